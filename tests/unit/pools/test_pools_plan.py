"""The pod planner: scaling, rollouts, replacement of dead workers (pure, no cluster)."""

from __future__ import annotations

import dataclasses
import itertools
import random
from datetime import UTC, datetime

import pytest

from shiftboss.pools.plan import Plan, plan
from shiftboss.pools.pods import HASH_LABEL, POOL_LABEL
from shiftboss.pools.podview import PodView

NEW = "newhash000"
OLD = "oldhash000"


def pod(
    name: str,
    hash_: str | None = NEW,
    *,
    phase: str | None = "Running",
    ready: bool = True,
    busy: bool = False,
    terminating: bool = False,
    created: float = 0.0,
) -> PodView:
    return PodView(
        name=name,
        template_hash=hash_,
        phase=phase,
        ready=ready,
        terminating=terminating,
        busy=busy,
        created=created,
    )


# --- PodView.from_pod --------------------------------------------------------------------


def api_pod(
    name: str = "resize-newhash000-abcde",
    *,
    phase: str | None = "Running",
    ready: str | None = "True",
    deletion: str | None = None,
    created: str | None = "2024-05-01T10:00:00Z",
) -> dict:
    metadata: dict = {
        "name": name,
        "namespace": "media",
        "labels": {POOL_LABEL: "resize", HASH_LABEL: NEW},
    }
    if created is not None:
        metadata["creationTimestamp"] = created
    if deletion is not None:
        metadata["deletionTimestamp"] = deletion
    status: dict = {}
    if phase is not None:
        status["phase"] = phase
    if ready is not None:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": ready},
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "status": status}


def test_from_pod_reads_a_running_ready_pod() -> None:
    view = PodView.from_pod(api_pod(), {"resize-newhash000-abcde"})
    assert view == PodView(
        name="resize-newhash000-abcde",
        template_hash=NEW,
        phase="Running",
        ready=True,
        terminating=False,
        busy=True,
        created=datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp(),
    )


def test_from_pod_not_ready_pending_terminating_idle() -> None:
    view = PodView.from_pod(
        api_pod(phase="Pending", ready="False", deletion="2024-05-01T10:05:00Z"),
        {"someone-else"},
    )
    assert view.phase == "Pending"
    assert view.ready is False
    assert view.terminating is True
    assert view.busy is False


def test_from_pod_tolerates_a_fresh_pod_without_status() -> None:
    raw = api_pod(phase=None, ready=None, created=None)
    del raw["status"]
    del raw["metadata"]["labels"][HASH_LABEL]
    view = PodView.from_pod(raw, set())
    assert view.phase is None
    assert view.ready is False
    assert view.template_hash is None
    assert view.created == 0.0


def test_from_pod_finished_pod_is_never_ready() -> None:
    assert PodView.from_pod(api_pod(phase="Succeeded", ready="True"), set()).ready is False


def test_from_pod_fractional_and_datetime_timestamps() -> None:
    frac = PodView.from_pod(api_pod(created="2024-05-01T10:00:00.5Z"), set())
    assert frac.created == datetime(2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC).timestamp()
    raw = api_pod()
    raw["metadata"]["creationTimestamp"] = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert PodView.from_pod(raw, set()).created == frac.created - 0.5


# --- scale up / down ---------------------------------------------------------------------


def test_scale_up_from_zero() -> None:
    result = plan(3, NEW, [])
    assert result.create == 3
    assert result.delete == ()
    assert result.reasons


def test_scale_up_counts_pending_pods() -> None:
    pods = [pod("a"), pod("b", phase="Pending", ready=False)]
    assert plan(3, NEW, pods) == plan(3, NEW, list(reversed(pods)))
    assert plan(3, NEW, pods).create == 1
    assert plan(2, NEW, pods).noop


def test_steady_state_is_a_noop() -> None:
    result = plan(2, NEW, [pod("a"), pod("b")])
    assert result == Plan(create=0, delete=(), reasons=())
    assert result.noop
    assert result.reason == "nothing to do"


def test_scale_down_deletes_idle_first() -> None:
    pods = [
        pod("busy-1", busy=True, created=1),
        pod("idle-1", created=2),
        pod("busy-2", busy=True, created=3),
        pod("idle-2", created=4),
    ]
    result = plan(2, NEW, pods)
    assert result.create == 0
    assert set(result.delete) == {"idle-1", "idle-2"}


def test_scale_down_order_idle_then_not_ready_then_newest() -> None:
    pods = [
        pod("idle-ready-old", created=1),
        pod("idle-ready-new", created=5),
        pod("idle-notready", ready=False, created=0),
        pod("busy-notready", ready=False, busy=True, created=9),
        pod("busy-ready", busy=True, created=9),
    ]
    assert plan(0, NEW, pods).delete == (
        "idle-notready",
        "idle-ready-new",
        "idle-ready-old",
        "busy-notready",
        "busy-ready",
    )
    assert plan(3, NEW, pods).delete == ("idle-notready", "idle-ready-new")
    assert plan(4, NEW, pods).delete == ("idle-notready",)


def test_scale_down_never_deletes_busy_while_idle_surplus_exists() -> None:
    busy = [pod(f"busy-{i}", busy=True, created=10 + i) for i in range(3)]
    idle = [pod(f"idle-{i}", created=i) for i in range(2)]
    for desired in (3, 4):
        deleted = set(plan(desired, NEW, busy + idle).delete)
        assert deleted <= {"idle-0", "idle-1"}
        assert len(deleted) == 5 - desired
    # Only when every idle worker goes may a busy one go, the newest busy one.
    assert plan(2, NEW, busy + idle).delete == ("idle-1", "idle-0", "busy-2")


def test_desired_zero_deletes_everything_live_idle_first() -> None:
    pods = [
        pod("new-busy", busy=True, created=3),
        pod("old-idle", OLD, created=1),
        pod("new-idle", created=2),
        pod("old-busy", OLD, busy=True, created=4),
        pod("gone", terminating=True),
    ]
    result = plan(0, NEW, pods)
    assert result.create == 0
    assert set(result.delete) == {"new-busy", "old-idle", "new-idle", "old-busy"}
    assert set(result.delete[:2]) == {"old-idle", "new-idle"}


# --- finished and terminating pods -------------------------------------------------------


def test_finished_pods_are_deleted_and_replaced() -> None:
    pods = [
        pod("ok"),
        pod("crashed", phase="Failed", ready=False),
        pod("drained", phase="Succeeded", ready=False),
    ]
    result = plan(3, NEW, pods)
    assert set(result.delete) == {"crashed", "drained"}
    assert result.create == 2


def test_finished_pods_are_deleted_even_at_desired_zero_and_when_outdated() -> None:
    pods = [pod("old-dead", OLD, phase="Failed", ready=False)]
    result = plan(0, NEW, pods)
    assert result.delete == ("old-dead",)
    assert result.create == 0


def test_terminating_pods_are_ignored() -> None:
    pods = [
        pod("a"),
        pod("leaving", terminating=True),
        pod("leaving-dead", phase="Failed", ready=False, terminating=True),
        pod("leaving-old", OLD, terminating=True),
    ]
    result = plan(2, NEW, pods)
    assert result.delete == ()
    assert result.create == 1  # "leaving" does not count towards desired


def test_terminating_pods_do_not_count_towards_the_surge_limit() -> None:
    pods = [pod("old-1", OLD), pod("old-2", OLD), pod("x", OLD, terminating=True)]
    assert plan(2, NEW, pods).create == 1


# --- rollout -----------------------------------------------------------------------------


def test_rollout_starts_with_a_surge_pod_and_deletes_nothing() -> None:
    pods = [pod(f"old-{i}", OLD) for i in range(3)]
    result = plan(3, NEW, pods)
    assert result.create == 1
    assert result.delete == ()


def test_rollout_waits_for_new_pods_to_be_ready() -> None:
    pods = [pod(f"old-{i}", OLD) for i in range(3)] + [pod("new-0", phase="Pending", ready=False)]
    result = plan(3, NEW, pods)
    assert result.noop, result.reasons  # at the surge limit, and nothing may go yet
    assert any("keep 3 outdated" in r for r in result.reasons)


def test_rollout_replaces_one_old_pod_per_ready_new_pod() -> None:
    pods = [pod(f"old-{i}", OLD, created=i) for i in range(3)] + [pod("new-0")]
    result = plan(3, NEW, pods)
    assert len(result.delete) == 1
    assert result.delete[0].startswith("old-")
    assert result.create == 1


@pytest.mark.parametrize("max_surge", [1, 2, 3, 5])
def test_rollout_respects_the_surge_limit(max_surge: int) -> None:
    desired = 4
    pods = [pod(f"old-{i}", OLD) for i in range(desired)]
    result = plan(desired, NEW, pods, max_surge=max_surge)
    assert result.create == min(max_surge, desired)
    assert len(pods) + result.create - len(result.delete) <= desired + max_surge


def test_rollout_keeps_the_ready_count() -> None:
    # 3 desired: 2 ready new + 3 ready old -> exactly 2 old may go.
    pods = [pod(f"old-{i}", OLD, created=i) for i in range(3)] + [pod("new-0"), pod("new-1")]
    result = plan(3, NEW, pods)
    assert len(result.delete) == 2
    remaining_ready = [p for p in pods if p.ready and p.name not in result.delete]
    assert len(remaining_ready) >= 3


def test_rollout_prefers_idle_outdated_pods() -> None:
    pods = [
        pod("old-busy-new", OLD, busy=True, created=9),
        pod("old-idle", OLD, created=1),
        pod("old-busy", OLD, busy=True, created=2),
        pod("new-0"),
    ]
    assert plan(3, NEW, pods).delete == ("old-idle",)


def test_rollout_never_deletes_busy_while_an_idle_outdated_can_go() -> None:
    for busy_pattern in itertools.product([False, True], repeat=4):
        pods = [
            pod(f"old-{i}", OLD, busy=busy, created=i) for i, busy in enumerate(busy_pattern)
        ] + [pod("new-0"), pod("new-1")]
        deleted = [p for p in pods if p.name in plan(4, NEW, pods).delete]
        kept_idle_old = [
            p for p in pods if p.template_hash == OLD and not p.busy and p not in deleted
        ]
        if any(p.busy for p in deleted):
            assert not kept_idle_old, busy_pattern


def test_not_ready_outdated_pods_may_always_go() -> None:
    pods = [
        pod("old-broken", OLD, phase="Pending", ready=False),
        pod("old-crashloop", OLD, ready=False, busy=True),
        pod("old-ok", OLD),
    ]
    result = plan(3, NEW, pods)
    assert set(result.delete) == {"old-broken", "old-crashloop"}
    assert result.create == 3  # 1 old left: 3 new fit under 3 + 1


def test_stalled_rollout_keeps_old_pods() -> None:
    """New pods that never become ready must not take the old ready pods down."""
    pods = [pod(f"old-{i}", OLD) for i in range(2)] + [pod("new-0", ready=False)]
    result = plan(2, NEW, pods)
    assert result.delete == ()
    assert result.create == 0  # 3 live pods: at the limit of 2 + 1
    assert any("wait" in r for r in result.reasons)
    # With more surge, the missing new pod is created, still nothing old goes.
    wider = plan(2, NEW, pods, max_surge=2)
    assert (wider.create, wider.delete) == (1, ())


def test_pods_without_a_hash_label_are_outdated() -> None:
    pods = [pod("stray", None), pod("new-0"), pod("new-1")]
    assert plan(2, NEW, pods).delete == ("stray",)


def test_scale_down_during_rollout() -> None:
    pods = [pod(f"old-{i}", OLD, created=i) for i in range(5)]
    result = plan(2, NEW, pods)
    assert len(result.delete) == 3
    assert result.create == 1
    assert len(pods) - len(result.delete) + result.create <= 2 + 1


def test_plan_is_deterministic() -> None:
    rng = random.Random(7)
    for _ in range(200):
        pods = random_pods(rng)
        desired = rng.randrange(0, 6)
        surge = rng.randrange(1, 4)
        first = plan(desired, NEW, pods, max_surge=surge)
        shuffled = pods[:]
        rng.shuffle(shuffled)
        assert plan(desired, NEW, pods, max_surge=surge) == first
        assert plan(desired, NEW, shuffled, max_surge=surge) == first


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="desired"):
        plan(-1, NEW, [])
    with pytest.raises(ValueError, match="max_surge"):
        plan(1, NEW, [], max_surge=0)


# --- convergence -------------------------------------------------------------------------


def random_pods(rng: random.Random, n: int | None = None) -> list[PodView]:
    n = rng.randrange(0, 8) if n is None else n
    pods = []
    for i in range(n):
        phase = rng.choice(["Running", "Running", "Running", "Pending", "Succeeded", "Failed"])
        ready = phase == "Running" and rng.random() < 0.8
        pods.append(
            pod(
                f"p{i}",
                rng.choice([NEW, OLD, "older00000"]),
                phase=phase,
                ready=ready,
                busy=phase == "Running" and rng.random() < 0.4,
                terminating=rng.random() < 0.1,
                created=float(rng.randrange(0, 100)),
            )
        )
    return pods


class Cluster:
    """A toy cluster: deleted pods terminate for one round, created pods start not ready
    and every live pod is running and ready one round later."""

    def __init__(self, pods: list[PodView]) -> None:
        self.pods = list(pods)
        self.counter = itertools.count(1000)
        self.clock = 1000.0

    def apply(self, result: Plan, hash_: str) -> None:
        names = set(result.delete)
        assert len(names) == len(result.delete), "a pod is deleted twice in one plan"
        known = {p.name for p in self.pods if not p.terminating}
        assert names <= known, "deleting a pod that is gone or already terminating"
        self.pods = [
            dataclasses.replace(p, terminating=True) if p.name in names else p for p in self.pods
        ]
        for _ in range(result.create):
            self.clock += 1
            self.pods.append(
                pod(
                    f"w{next(self.counter)}",
                    hash_,
                    phase="Pending",
                    ready=False,
                    created=self.clock,
                )
            )

    def tick(self, rng: random.Random | None = None) -> None:
        """Terminating pods vanish; pending pods start and become ready; busy flips."""
        pods = []
        for p in self.pods:
            if p.terminating:
                continue
            if p.phase in ("Pending", "Running"):
                p = dataclasses.replace(p, phase="Running", ready=True)
            if rng is not None and p.phase == "Running":
                p = dataclasses.replace(p, busy=rng.random() < 0.5)
            pods.append(p)
        self.pods = pods

    def live(self) -> list[PodView]:
        return [p for p in self.pods if p.live]


def converge(
    cluster: Cluster,
    desired: int,
    *,
    max_surge: int = 1,
    rng: random.Random | None = None,
    max_rounds: int = 60,
) -> int:
    """Plan, apply, tick until a fixed point; returns the number of rounds."""
    for rounds in range(max_rounds):
        result = plan(desired, NEW, cluster.pods, max_surge=max_surge)
        assert plan(desired, NEW, cluster.pods, max_surge=max_surge) == result
        settled = all(p.ready for p in cluster.live()) and not any(
            p.terminating for p in cluster.pods
        )
        if result.noop and settled:
            return rounds
        cluster.apply(result, NEW)
        cluster.tick(rng)
    raise AssertionError(f"no fixed point after {max_rounds} rounds: {cluster.pods}")


def assert_converged(cluster: Cluster, desired: int) -> None:
    live = cluster.live()
    assert len(live) == desired
    assert all(p.template_hash == NEW for p in live)
    assert all(p.ready for p in live)
    assert not [p for p in cluster.pods if p.finished]


def test_converges_from_empty() -> None:
    cluster = Cluster([])
    converge(cluster, 4)
    assert_converged(cluster, 4)


@pytest.mark.parametrize("max_surge", [1, 2, 4])
@pytest.mark.parametrize(("before", "after"), [(3, 3), (3, 5), (5, 2), (1, 1), (4, 0), (0, 3)])
def test_rollout_converges_and_keeps_bounds(before: int, after: int, max_surge: int) -> None:
    rng = random.Random(before * 100 + after * 10 + max_surge)
    cluster = Cluster(
        [pod(f"old-{i}", OLD, created=i, busy=rng.random() < 0.5) for i in range(before)]
    )
    for _ in range(60):
        result = plan(after, NEW, cluster.pods, max_surge=max_surge)
        if result.noop and not any(p.terminating for p in cluster.pods):
            break
        ready_before = sum(p.ready for p in cluster.live())
        live_before = len(cluster.live())
        cluster.apply(result, NEW)
        live_after = cluster.live()
        # Never more than desired + surge, unless there already were more (scale-down).
        assert len(live_after) <= max(after + max_surge, live_before)
        # Never below the desired ready count (or what was ready) by deleting.
        assert sum(p.ready for p in live_after) >= min(after, ready_before)
        cluster.tick(rng)
    else:
        raise AssertionError("no fixed point")
    assert_converged(cluster, after)


def test_converges_from_random_states() -> None:
    rng = random.Random(20240501)
    for _ in range(300):
        cluster = Cluster(random_pods(rng))
        desired = rng.randrange(0, 7)
        surge = rng.randrange(1, 4)
        converge(cluster, desired, max_surge=surge, rng=rng)
        assert_converged(cluster, desired)


def test_a_crashing_pod_is_replaced_until_converged() -> None:
    cluster = Cluster([pod("a"), pod("b")])
    converge(cluster, 2)
    cluster.pods[0] = dataclasses.replace(cluster.pods[0], phase="Failed", ready=False)
    rounds = converge(cluster, 2)
    assert rounds >= 1
    assert_converged(cluster, 2)
    assert "a" not in {p.name for p in cluster.pods}


# --- back-off: a hold on creating pods ---------------------------------------------------

HOLD = 1000.0  # hold_until in the cases below


def exited(name: str, hash_: str = NEW, phase: str = "Failed", created: float = 0.0) -> PodView:
    return pod(name, hash_, phase=phase, ready=False, created=created)


@pytest.mark.parametrize(
    ("desired", "pods", "now", "create", "delete", "recheck_at"),
    [
        # No hold: an exited worker is removed and replaced at once.
        (1, [exited("x")], HOLD, 1, ("x",), None),
        # Held: it keeps its place, nothing is created, look again when the hold ends.
        (1, [exited("x")], HOLD - 1, 0, (), HOLD),
        (1, [exited("x", phase="Succeeded")], HOLD - 1, 0, (), HOLD),
        # Held with no exited pod: a scale-up waits too.
        (3, [pod("a")], HOLD - 1, 0, (), HOLD),
        # Held, at full strength: nothing waits on the hold.
        (2, [pod("a"), pod("b")], HOLD - 1, 0, (), None),
        # Held, but exited pods beyond desired (scaled down meanwhile) go at once.
        (1, [exited("x", created=2), exited("y", created=1)], HOLD - 1, 0, ("y",), HOLD),
        (0, [exited("x")], HOLD - 1, 0, ("x",), None),
        # Held: exited workers of an outdated template go at once (they hold no place).
        (1, [exited("old", OLD)], HOLD - 1, 0, ("old",), HOLD),
        # Held: scale-down and rollout deletions are not held.
        (1, [pod("a"), pod("b", created=1)], HOLD - 1, 0, ("b",), None),
        (1, [pod("o", OLD), pod("n")], HOLD - 1, 0, ("o",), None),
        # Held: the exited place of a pool with one worker left.
        (2, [pod("a"), exited("x")], HOLD - 1, 0, (), HOLD),
        # Hold over: every exited worker goes and is replaced.
        (2, [pod("a"), exited("x"), exited("y")], HOLD + 5, 1, ("x", "y"), None),
    ],
)
def test_plan_with_a_hold(
    desired: int,
    pods: list[PodView],
    now: float,
    create: int,
    delete: tuple[str, ...],
    recheck_at: float | None,
) -> None:
    result = plan(desired, NEW, pods, now=now, hold_until=HOLD)
    assert (result.create, set(result.delete), result.recheck_at) == (
        create,
        set(delete),
        recheck_at,
    ), result.reasons
    if recheck_at is not None:
        assert any("back-off" in r for r in result.reasons)


def test_a_held_pool_converges_once_the_hold_ends() -> None:
    """Restarts are not lost: after the back-off the pool reaches its replicas."""
    cluster = Cluster([exited("x"), exited("y"), pod("a")])
    held = plan(3, NEW, cluster.pods, now=HOLD - 1, hold_until=HOLD)
    assert (held.create, held.delete) == (0, ())
    cluster.apply(held, NEW)
    cluster.tick()
    for _ in range(10):
        result = plan(3, NEW, cluster.pods, now=HOLD + 1, hold_until=HOLD)
        if result.noop:
            break
        cluster.apply(result, NEW)
        cluster.tick()
    assert_converged(cluster, 3)
