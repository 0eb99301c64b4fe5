"""``run_elected``: stand by, lead, label the pod, and stop in the right order (virtual time)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from lease_fakes import FakeLeaseBackend, Fault, now, run_virtual
from pod_fakes import FakePods

from shiftboss.kube.client import ApiError
from shiftboss.kube.leases import LeaseSpec
from shiftboss.leader import ElectionTiming, LeaderElector, run_elected
from shiftboss.ownpod import LeaderLabel, PodRef

TIMING = ElectionTiming.for_lease(15)


class Story:
    """What happened, in order, with the virtual time of each step."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, float]] = []

    def __call__(self, step: str) -> None:
        self.steps.append((step, now()))

    def names(self) -> list[str]:
        return [name for name, _ in self.steps]

    def at(self, name: str) -> float:
        return dict(self.steps)[name]

    @contextlib.asynccontextmanager
    async def standby(self) -> AsyncIterator[None]:
        self("standby up")
        try:
            yield
        finally:
            self("standby down")

    async def operate(self, seconds: float = 3600, fail: bool = False) -> None:
        self("operating")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self("operator cancelled")
            raise
        if fail:
            raise RuntimeError("the operator crashed")
        self("operator done")


def test_losing_the_lease_stops_acting_then_the_operator_and_exits_1():
    async def scenario():
        backend = FakeLeaseBackend()
        backend.put(LeaseSpec(holder="old", duration_seconds=15))
        client = backend.client("a")
        story = Story()
        elected = asyncio.create_task(
            run_elected(
                LeaderElector(client, TIMING, "a"),
                story.operate,
                standing_by=story.standby(),
                stop_acting=lambda: story("stopped acting"),
            )
        )
        await asyncio.sleep(20)
        client.fault = Fault.HANG
        assert await elected == 1
        assert story.names() == [
            "standby up",
            "operating",
            "stopped acting",
            "operator cancelled",
            "standby down",  # at the latest; the operator stops it before it binds
        ]
        assert story.at("operating") == 15.0  # elected once the old holder's lease ran out
        assert story.at("stopped acting") == 19.0 + TIMING.renew_deadline_seconds

    run_virtual(scenario())


def test_an_operator_that_returns_releases_the_lease_and_exits_0():
    async def scenario():
        backend = FakeLeaseBackend()
        story = Story()
        status = await run_elected(
            LeaderElector(backend.client("a"), TIMING, "a"),
            lambda: story.operate(seconds=30),
            standing_by=story.standby(),
            stop_acting=lambda: story("stopped acting"),
        )
        assert status == 0
        assert story.names() == ["standby up", "operating", "operator done", "standby down"]
        assert backend.record is not None
        assert (backend.record.spec.holder, backend.record.spec.duration_seconds) == (None, 1)

    run_virtual(scenario())


def test_an_operator_crash_still_releases_the_lease_and_surfaces():
    async def scenario():
        backend = FakeLeaseBackend()
        story = Story()
        with pytest.raises(RuntimeError, match="the operator crashed"):
            await run_elected(
                LeaderElector(backend.client("a"), TIMING, "a"),
                lambda: story.operate(seconds=5, fail=True),
                standing_by=story.standby(),
                stop_acting=lambda: story("stopped acting"),
            )
        assert backend.record is not None and backend.record.spec.holder is None
        assert "stopped acting" not in story.names()

    run_virtual(scenario())


POD = PodRef(name="op-1", namespace="sb")


def labelled(story: Story, *, fail: bool = False, latency: float = 0) -> LeaderLabel:
    """A ``LeaderLabel`` on a fake pod whose changes are steps of ``story``."""
    pods = FakePods(
        "/api/v1/namespaces/sb/pods/op-1",
        on_change=lambda value: story("labelled" if value else "unlabelled"),
        latency=latency,
    )
    if fail:
        pods.errors = [ApiError(403, "Forbidden", "no")] * 1000
    return LeaderLabel(pods, POD)


def test_the_label_goes_before_standing_by_leading_and_away_before_the_release():
    async def scenario():
        backend = FakeLeaseBackend()
        story = Story()
        released_when = []

        class Recorded(LeaderElector):
            async def release(self) -> None:
                released_when.append(list(story.names()))
                await super().release()

        status = await run_elected(
            Recorded(backend.client("a"), TIMING, "a"),
            lambda: story.operate(seconds=30),
            standing_by=story.standby(),
            stop_acting=lambda: story("stopped acting"),
            leader_label=labelled(story, latency=0.5),  # each step waits for its patch
        )
        assert status == 0
        assert story.names() == [
            "unlabelled",  # at start: a restarted former leader's pod must not stay routed
            "standby up",
            "labelled",  # before the operator serves /v1
            "operating",
            "operator done",
            "unlabelled",
            "standby down",
        ]
        assert released_when == [story.names()[:-1]]  # unlabelled before the release

    run_virtual(scenario())


def test_losing_the_lease_removes_the_label_after_acting_stopped():
    async def scenario():
        backend = FakeLeaseBackend()
        client = backend.client("a")
        story = Story()
        elected = asyncio.create_task(
            run_elected(
                LeaderElector(client, TIMING, "a"),
                story.operate,
                standing_by=story.standby(),
                stop_acting=lambda: story("stopped acting"),
                leader_label=labelled(story),
            )
        )
        await asyncio.sleep(5)
        backend.put(LeaseSpec(holder="b", duration_seconds=15))  # taken over
        assert await elected == 1
        # The patch is sent as the operator is cancelled (the Kopf side must stop acting
        # at once), and lands before the standby goes.
        assert story.names()[3:] == [
            "operating",
            "stopped acting",
            "operator cancelled",
            "unlabelled",
            "standby down",
        ]

    run_virtual(scenario())


def test_a_label_that_cannot_be_written_does_not_keep_the_replica_from_leading(caplog):
    async def scenario():
        backend = FakeLeaseBackend()
        story = Story()
        status = await run_elected(
            LeaderElector(backend.client("a"), TIMING, "a"),
            lambda: story.operate(seconds=30),
            standing_by=story.standby(),
            stop_acting=lambda: story("stopped acting"),
            leader_label=labelled(story, fail=True),
        )
        assert status == 0
        assert story.names() == ["standby up", "operating", "operator done", "standby down"]
        assert story.at("operating") == 0  # no wait beyond the failed attempts

    run_virtual(scenario())
    assert "needs the RBAC rule" in caplog.text
