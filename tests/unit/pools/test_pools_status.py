"""The WorkerPool status computed from its pods (pure, no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shiftboss.api.common import Condition, get_condition
from shiftboss.api.workerpool import WorkerPool, WorkerPoolStatus
from shiftboss.pools.health import Trouble
from shiftboss.pools.podview import PodView
from shiftboss.pools.status import pool_status, status_changed

NEW = "newhash000"
OLD = "oldhash000"
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
T2 = T0 + timedelta(minutes=10)


def make_pool(replicas: int = 3, *, paused: bool = False, status: dict | None = None) -> WorkerPool:
    body: dict[str, Any] = {
        "metadata": {"name": "resize", "namespace": "media", "uid": "u-1", "generation": 7},
        "spec": {
            "image": "img:1",
            "app": "app:worker",
            "replicas": replicas,
            "paused": paused,
        },
    }
    if status is not None:
        body["status"] = status
    return WorkerPool.model_validate(body)


def pod(
    name: str,
    hash_: str = NEW,
    *,
    phase: str = "Running",
    ready: bool = True,
    busy: bool = False,
    terminating: bool = False,
) -> PodView:
    return PodView(
        name=name,
        template_hash=hash_,
        phase=phase,
        ready=ready,
        terminating=terminating,
        busy=busy,
        created=0.0,
    )


def ready_pods(n: int, hash_: str = NEW) -> list[PodView]:
    return [pod(f"{hash_}-{i}", hash_) for i in range(n)]


def status_of(pool: WorkerPool, pods: list[PodView], **kwargs: Any) -> WorkerPoolStatus:
    kwargs.setdefault("now", T0)
    return pool_status(pool, template_hash=NEW, pods=pods, **kwargs)


def cond(status: WorkerPoolStatus, type_: str) -> Condition:
    found = get_condition(status.conditions, type_)
    assert found is not None, f"no {type_} condition"
    return found


def test_fields_of_a_healthy_pool() -> None:
    pods = [pod("a", busy=True), pod("b"), pod("c")]
    status = status_of(make_pool(3), pods, queued_jobs=4, running_jobs=2, busy_workers=1)
    assert status.replicas == 3
    assert status.ready_replicas == 3
    assert status.busy_workers == 1
    assert status.queued_jobs == 4
    assert status.running_jobs == 2
    assert status.selector == "shiftboss.io/pool=resize"
    assert status.template_hash == NEW
    assert status.observed_generation == 7
    assert [c.type for c in status.conditions] == ["Ready", "Progressing", "Degraded"]
    ready = cond(status, "Ready")
    assert (ready.status, ready.reason, ready.message) == (
        "True",
        "WorkersReady",
        "3/3 workers ready",
    )
    assert ready.last_transition_time == T0
    assert ready.observed_generation == 7
    assert cond(status, "Progressing").status == "False"
    assert cond(status, "Degraded").status == "False"
    # What the operator writes: camelCase, RFC 3339 timestamps.
    dumped = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["readyReplicas"] == 3
    assert dumped["conditions"][0]["lastTransitionTime"] == "2024-05-01T10:00:00Z"


def test_busy_workers_default_counts_busy_live_pods() -> None:
    pods = [
        pod("a", busy=True),
        pod("b", busy=True),
        pod("c"),
        pod("d", busy=True, terminating=True),
    ]
    assert status_of(make_pool(3), pods).busy_workers == 2
    assert status_of(make_pool(3), pods, busy_workers=0).busy_workers == 0


def test_not_ready() -> None:
    pods = [pod("a"), pod("b", ready=False, phase="Pending")]
    status = status_of(make_pool(3), pods)
    ready = cond(status, "Ready")
    assert (ready.status, ready.reason, ready.message) == (
        "False",
        "WorkersNotReady",
        "1/3 workers ready",
    )
    assert status.ready_replicas == 1
    progressing = cond(status, "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "ScalingUp")


def test_ready_counts_only_current_template_pods() -> None:
    status = status_of(make_pool(2), [*ready_pods(2, OLD), pod("n", ready=False)])
    assert cond(status, "Ready").status == "False"
    assert cond(status, "Ready").message == "0/2 workers ready"
    # ...while readyReplicas counts every ready worker serving the pool.
    assert status.ready_replicas == 2


def test_desired_zero_is_ready() -> None:
    status = status_of(make_pool(0), [])
    assert cond(status, "Ready").status == "True"
    assert cond(status, "Ready").message == "0/0 workers ready"
    assert cond(status, "Progressing").status == "False"


def test_paused_is_said_in_the_ready_message() -> None:
    status = status_of(make_pool(1, paused=True), ready_pods(1))
    assert cond(status, "Ready").message == "1/1 workers ready; dispatch paused"


def test_progressing_during_rollout() -> None:
    status = status_of(make_pool(3), [*ready_pods(3, OLD), pod("n0")])
    progressing = cond(status, "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "RollingOut")
    assert "3 outdated workers" in (progressing.message or "")


def test_progressing_reasons() -> None:
    cases = {
        "ScalingUp": (3, ready_pods(2)),
        "ScalingDown": (1, ready_pods(2)),
        "WorkersStarting": (2, [pod("a"), pod("b", ready=False)]),
        "WorkersDraining": (2, [*ready_pods(2), pod("x", terminating=True)]),
    }
    for reason, (replicas, pods) in cases.items():
        progressing = cond(status_of(make_pool(replicas), pods), "Progressing")
        assert (progressing.status, progressing.reason) == ("True", reason), reason
    done = cond(status_of(make_pool(2), ready_pods(2)), "Progressing")
    assert (done.status, done.reason) == ("False", "WorkersUpToDate")


CRASH = Trouble(
    "WorkerCrashLoop",
    "worker exited with code 1: ModuleNotFoundError: No module named 'nosuchmodule' "
    "(2 exits in a row; replaced after a 20s back-off)",
)
REFUSED = Trouble("PodCreateFailed", "cannot create worker pods: exceeded quota: pods=0")


def test_exited_pods_alone_do_not_make_a_pool_degraded() -> None:
    # Whether exits are a crash loop is the pool's health to say (see test_pools_health).
    failed = [pod(f"f{i}", phase="Failed", ready=False) for i in range(3)]
    degraded = cond(status_of(make_pool(2), ready_pods(2) + failed), "Degraded")
    assert (degraded.status, degraded.reason) == ("False", "WorkersHealthy")
    assert degraded.message == "no worker exited on its own; worker pods are created"


@pytest.mark.parametrize("trouble", [CRASH, REFUSED], ids=lambda t: t.reason)
def test_a_trouble_is_degraded_and_stalled_and_holds_progress_back(trouble: Trouble) -> None:
    held = [pod("x", phase="Failed", ready=False)]
    status = status_of(make_pool(1), held, trouble=trouble)
    summary = {c.type: (c.status, c.reason) for c in status.conditions}
    assert summary == {
        "Ready": ("False", "WorkersNotReady"),
        "Progressing": ("False", trouble.reason),
        "Degraded": ("True", trouble.reason),
        "Stalled": ("True", trouble.reason),
    }
    assert cond(status, "Degraded").message == trouble.message
    assert cond(status, "Stalled").message == trouble.message
    assert cond(status, "Progressing").message == (
        f"held back by {trouble.reason}: see the Degraded condition"
    )


def test_a_trouble_with_every_worker_ready_is_degraded_but_not_progressing() -> None:
    # The replacement runs, the crash loop is not over until it has proven itself.
    status = status_of(make_pool(2), ready_pods(2), trouble=CRASH)
    summary = {c.type: (c.status, c.reason) for c in status.conditions}
    assert summary == {
        "Ready": ("True", "WorkersReady"),
        "Progressing": ("False", "WorkersUpToDate"),
        "Degraded": ("True", "WorkerCrashLoop"),
        "Stalled": ("True", "WorkerCrashLoop"),
    }


def test_reconciling_is_present_only_while_progressing() -> None:
    pool = make_pool(2)
    starting = status_of(pool, [pod("a"), pod("b", ready=False)])
    reconciling = cond(starting, "Reconciling")
    progressing = cond(starting, "Progressing")
    assert (reconciling.status, reconciling.reason, reconciling.message) == (
        "True",
        progressing.reason,
        progressing.message,
    )
    assert get_condition(starting.conditions, "Stalled") is None
    done = status_of(pool, ready_pods(2), previous=starting, now=T1)
    assert [c.type for c in done.conditions] == ["Ready", "Progressing", "Degraded"]


def test_recovery_clears_degraded_and_stalled() -> None:
    pool = make_pool(1)
    troubled = status_of(pool, [], trouble=REFUSED, now=T0)
    healed = status_of(pool, ready_pods(1), previous=troubled, now=T1)
    assert cond(healed, "Degraded").status == "False"
    assert cond(healed, "Degraded").last_transition_time == T1
    assert get_condition(healed.conditions, "Stalled") is None


def test_a_lasting_trouble_writes_nothing_new_while_the_crash_loop_turns() -> None:
    # While the same trouble lasts, the replacement's coming and going (pending, then
    # exited again) changes no condition: no status write per turn of the loop.
    pool = make_pool(1)
    held = status_of(pool, [pod("x", phase="Failed", ready=False)], trouble=CRASH, now=T0)
    for pods in ([pod("y", phase="Pending", ready=False)], [pod("y", ready=False)], []):
        again = status_of(pool, pods, trouble=CRASH, previous=held, now=T1)
        assert not status_changed(held, again), pods
    # The next exit says so (one write per exit, as the back-off allows).
    third = Trouble(CRASH.reason, CRASH.message.replace("2 exits", "3 exits"))
    assert status_changed(held, status_of(pool, [], trouble=third, previous=held, now=T2))


def test_transition_time_moves_only_when_status_changes() -> None:
    pool = make_pool(2)
    first = status_of(pool, ready_pods(2), now=T0)
    # Same statuses, different message: the transition time stays.
    second = status_of(pool, [*ready_pods(2), pod("extra")], previous=first, now=T1)
    assert cond(second, "Ready").last_transition_time == T0
    assert cond(second, "Progressing").status == "True"
    assert cond(second, "Progressing").last_transition_time == T1
    assert cond(second, "Degraded").last_transition_time == T0
    # Ready flips: its time moves, Degraded's does not.
    third = status_of(pool, [pod("a")], previous=second, now=T2)
    assert cond(third, "Ready").status == "False"
    assert cond(third, "Ready").last_transition_time == T2
    assert cond(third, "Progressing").last_transition_time == T1
    assert cond(third, "Degraded").last_transition_time == T0


def test_previous_defaults_to_the_pools_status() -> None:
    first = status_of(make_pool(2), ready_pods(2), now=T0)
    pool = make_pool(2, status=first.model_dump(mode="json", by_alias=True, exclude_none=True))
    again = status_of(pool, ready_pods(2), now=T1)
    assert cond(again, "Ready").last_transition_time == T0
    assert not status_changed(first, again)


def test_unknown_conditions_of_the_previous_status_are_kept() -> None:
    previous = WorkerPoolStatus(
        conditions=[Condition(type="Custom", status="True", reason="X", last_transition_time=T0)]
    )
    status = status_of(make_pool(1), ready_pods(1), previous=previous)
    assert [c.type for c in status.conditions] == ["Custom", "Ready", "Progressing", "Degraded"]


def test_status_changed_ignores_timestamps_only() -> None:
    pool = make_pool(2)
    first = status_of(pool, ready_pods(2), now=T0)
    assert status_changed(None, first)
    # Recomputed later from scratch (new transition times everywhere): no real change.
    later = status_of(pool, ready_pods(2), now=T2)
    assert cond(later, "Ready").last_transition_time != cond(first, "Ready").last_transition_time
    assert not status_changed(first, later)
    assert not status_changed(first, status_of(pool, ready_pods(2), previous=first, now=T1))


def test_status_changed_sees_real_changes() -> None:
    pool = make_pool(2)
    base = status_of(pool, ready_pods(2), now=T0)
    assert status_changed(base, status_of(pool, ready_pods(2), queued_jobs=1, now=T0))
    assert status_changed(base, status_of(pool, ready_pods(2), busy_workers=1, now=T0))
    assert status_changed(base, status_of(pool, [pod("a")], previous=base, now=T1))
    assert status_changed(base, base.model_copy(update={"observed_generation": 8}))
    changed_message = base.model_copy(
        update={
            "conditions": [
                c.model_copy(update={"message": "other"}) if c.type == "Ready" else c
                for c in base.conditions
            ]
        }
    )
    assert status_changed(base, changed_message)
