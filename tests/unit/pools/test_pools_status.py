"""The WorkerPool status computed from its pods (pure, no cluster)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shiftboss.api.common import Condition, get_condition
from shiftboss.api.workerpool import WorkerPool, WorkerPoolStatus
from shiftboss.pools.plan import PodView, pool_status, status_changed

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


def test_degraded_when_more_pods_failed_than_desired() -> None:
    failed = [pod(f"f{i}", phase="Failed", ready=False) for i in range(3)]
    status = status_of(make_pool(2), ready_pods(2) + failed)
    degraded = cond(status, "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "WorkersFailing")
    assert "3 worker pods failed" in (degraded.message or "")

    at_limit = status_of(make_pool(2), ready_pods(2) + failed[:2])
    assert cond(at_limit, "Degraded").status == "False"
    # Succeeded pods (drained workers) are not failures.
    drained = [pod(f"s{i}", phase="Succeeded", ready=False) for i in range(5)]
    assert cond(status_of(make_pool(2), drained), "Degraded").status == "False"


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
