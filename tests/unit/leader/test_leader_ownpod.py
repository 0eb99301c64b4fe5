"""``shiftboss.ownpod``: which pod a replica is, and keeping the leader label on it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from lease_fakes import now, run_virtual
from pod_fakes import FakePods

from shiftboss.kube.client import ApiError
from shiftboss.ownpod import (
    LEADER_LABEL,
    Backoff,
    LeaderLabel,
    OwnPodError,
    PodRef,
    failure_message,
    leader_patch,
)

POD = PodRef(name="shiftboss-6d9f-abcde", namespace="shiftboss-system")
PATH = "/api/v1/namespaces/shiftboss-system/pods/shiftboss-6d9f-abcde"


def test_the_pod_comes_from_both_variables_or_neither():
    env = {"SHIFTBOSS_POD_NAME": POD.name, "SHIFTBOSS_POD_NAMESPACE": POD.namespace}
    assert PodRef.from_env(env) == POD
    assert PodRef.from_env({}) is None
    assert PodRef.from_env({"SHIFTBOSS_POD_NAME": " ", "SHIFTBOSS_POD_NAMESPACE": ""}) is None
    with pytest.raises(OwnPodError, match="SHIFTBOSS_POD_NAME and SHIFTBOSS_POD_NAMESPACE go"):
        PodRef.from_env({"SHIFTBOSS_POD_NAME": POD.name})
    with pytest.raises(OwnPodError, match="not a pod's name and namespace"):
        PodRef.from_env({**env, "SHIFTBOSS_POD_NAMESPACE": "Shiftboss_System"})
    with pytest.raises(OwnPodError, match="not a pod's name and namespace"):
        PodRef.from_env({**env, "SHIFTBOSS_POD_NAME": "a/b"})


def test_the_patch_sets_or_removes_only_the_leader_label():
    assert leader_patch(True) == {"metadata": {"labels": {LEADER_LABEL: "true"}}}
    assert leader_patch(False) == {"metadata": {"labels": {LEADER_LABEL: None}}}


def test_a_forbidden_patch_names_the_missing_rbac_rule():
    message = failure_message(POD, True, ApiError(403, "Forbidden", "pods is forbidden"))
    assert message.startswith(
        f"cannot set {LEADER_LABEL} on pod shiftboss-system/shiftboss-6d9f-abcde: forbidden"
    )
    assert 'apiGroups [""], resources [pods], verbs [patch] in namespace shiftboss-system' in (
        message
    )
    missing = failure_message(POD, False, ApiError(404, "NotFound", "not found"))
    assert "cannot remove" in missing and "must name this replica's own pod" in missing
    assert failure_message(POD, False, TimeoutError()).endswith(": TimeoutError")


def test_backoff_doubles_up_to_its_cap():
    backoff = Backoff(initial=0.5, cap=4)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]
    assert backoff.delay(10_000) == 4


def test_entering_removes_the_label_and_want_sets_it():
    async def scenario():
        pods = FakePods(PATH)
        pods.labels[LEADER_LABEL] = "true"  # a restarted former leader's container
        async with LeaderLabel(pods, POD) as label:
            assert await label.settle(5)
            assert pods.labels == {}
            label.want(True)
            assert await label.settle(5)
            assert pods.labels == {LEADER_LABEL: "true"}
            label.want(False)
            assert await label.settle(5)
            assert pods.labels == {}
        assert len(pods.history) == 3

    run_virtual(scenario())


def test_failures_are_retried_with_backoff_and_settle_returns_after_one(caplog):
    async def scenario():
        pods = FakePods(PATH)
        pods.errors = [ApiError(403, "Forbidden", "no"), ApiError(500, "InternalError", "boom")]
        async with LeaderLabel(pods, POD, backoff=Backoff(initial=1, cap=60)) as label:
            label.want(True)
            assert not await label.settle(30)  # the first attempt failed: go on without it
            assert now() == 0
            assert not await label.settle(30)  # the retry 1 s later failed too
            assert now() == 1
            assert await label.settle(30)  # and the next one, 2 s later, landed
            assert now() == 3
            assert pods.labels == {LEADER_LABEL: "true"}

    with caplog.at_level(logging.WARNING, logger="shiftboss.leader"):
        run_virtual(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert "needs the RBAC rule" in lines[0] and lines[0].endswith("retrying in 1.0s")
    assert lines[1].endswith("500 InternalError: boom; retrying in 2.0s")


def test_a_hung_patch_is_bounded_and_the_latest_wish_wins():
    async def scenario():
        pods = FakePods(PATH)
        async with LeaderLabel(pods, POD, backoff=Backoff(initial=1), attempt_timeout=5) as label:
            assert await label.settle(1)
            pods.hang = True
            label.want(True)
            assert not await label.settle(2)  # still in flight: the wait is bounded
            assert now() == 2
            label.want(False)  # lost it meanwhile
            pods.hang = False
            assert not await label.settle(30)  # the hung patch timed out: may have landed
            assert now() == 5
            assert await label.settle(30)  # so it is removed again, at once: a new wish
            assert pods.history == [(0, None), (5, None)]

    run_virtual(scenario())


def test_without_a_pod_nothing_is_patched():
    async def scenario():
        async with LeaderLabel(None, None) as label:
            label.want(True)
            assert await label.settle(1)
            assert now() == 0
        pods = FakePods(PATH)
        async with LeaderLabel.from_env(pods, {}) as label:
            label.want(True)
            await asyncio.sleep(1)
        assert pods.history == []

    run_virtual(scenario())
