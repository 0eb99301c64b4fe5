"""A pool's health: crash-loop back-off, refused pods, and what Degraded says (pure)."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from shiftboss.pools.exits import WorkerExit
from shiftboss.pools.health import (
    CRASH_BACKOFF,
    CREATE_BACKOFF,
    Backoff,
    CrashLoop,
    PoolHealth,
    refused_message,
)
from shiftboss.pools.plan import plan
from shiftboss.pools.podview import PodView

NEW = "newhash000"
OLD = "oldhash000"
IMPORT_ERROR = WorkerExit(1, "ModuleNotFoundError: No module named 'nosuchmodule'", None)


def running(name: str, *, created: float = 0.0, ready_since: float | None = None) -> PodView:
    return PodView(
        name=name,
        template_hash=NEW,
        phase="Running",
        ready=ready_since is not None,
        terminating=False,
        busy=False,
        created=created,
        ready_since=ready_since,
    )


def exited(
    name: str,
    at: float | None,
    *,
    hash_: str = NEW,
    terminating: bool = False,
    how: WorkerExit = IMPORT_ERROR,
) -> PodView:
    return PodView(
        name=name,
        template_hash=hash_,
        phase="Failed",
        ready=False,
        terminating=terminating,
        busy=False,
        created=0.0,
        worker_exit=dataclasses.replace(how, finished_at=at),
    )


@pytest.mark.parametrize(
    ("backoff", "failures", "delay"),
    [
        (CRASH_BACKOFF, 0, 0.0),
        (CRASH_BACKOFF, 1, 10.0),
        (CRASH_BACKOFF, 2, 20.0),
        (CRASH_BACKOFF, 3, 40.0),
        (CRASH_BACKOFF, 5, 160.0),
        (CRASH_BACKOFF, 6, 300.0),
        (CRASH_BACKOFF, 10_000, 300.0),
        (CREATE_BACKOFF, 1, 5.0),
        (CREATE_BACKOFF, 4, 40.0),
        (CREATE_BACKOFF, 5, 60.0),
        (Backoff(1.5, 4.0), 2, 3.0),
    ],
)
def test_backoff_delays(backoff: Backoff, failures: int, delay: float) -> None:
    assert backoff.delay(failures) == delay


# --- crash loop ----------------------------------------------------------------------------


def test_an_exit_counts_once_and_holds_its_replacement_back() -> None:
    state, fresh = CrashLoop().observe([exited("x", 100.0)], NEW, now=101.0)
    assert [p.name for p in fresh] == ["x"]
    assert (state.exits, state.last_exit_at, state.retry_at) == (1, 100.0, 110.0)
    # Seen again at later passes: not a new exit.
    again, fresh = state.observe([exited("x", 100.0)], NEW, now=105.0)
    assert fresh == ()
    assert again == state


def test_exits_in_a_row_double_the_back_off() -> None:
    state, _ = CrashLoop().observe([exited("a", 100.0)], NEW, now=100.0)
    state, _ = state.observe([exited("b", 112.0)], NEW, now=113.0)  # "a" was replaced
    assert (state.exits, state.retry_at, state.backoff_seconds) == (2, 132.0, 20.0)
    state, _ = state.observe([exited("c", 133.0)], NEW, now=133.0)
    assert (state.exits, state.retry_at) == (3, 173.0)
    assert state.counted == frozenset({"c"})  # pods that are gone are forgotten


def test_exits_seen_together_count_in_the_order_they_happened() -> None:
    pods = [exited("late", 105.0), exited("early", 100.0)]
    state, fresh = CrashLoop().observe(pods, NEW, now=106.0)
    assert [p.name for p in fresh] == ["early", "late"]
    assert (state.exits, state.retry_at) == (2, 125.0)


@pytest.mark.parametrize(
    "pod",
    [
        exited("deleted", 100.0, terminating=True),  # the operator (or someone) deleted it
        exited("old", 100.0, hash_=OLD),  # another template's worker
        running("alive", ready_since=50.0),
    ],
    ids=["terminating", "outdated", "running"],
)
def test_what_is_not_an_exit_on_its_own(pod: PodView) -> None:
    state, fresh = CrashLoop().observe([pod], NEW, now=101.0)
    assert (state.exits, fresh) == (0, ())
    assert state.trouble() is None


def test_an_exit_without_a_known_time_counts_from_when_it_was_seen() -> None:
    state, _ = CrashLoop().observe([exited("x", None)], NEW, now=200.0)
    assert state.retry_at == 210.0
    future, _ = CrashLoop().observe([exited("y", 999.0)], NEW, now=200.0)  # skewed clock
    assert future.retry_at == 210.0


def test_a_new_template_starts_afresh() -> None:
    state, _ = CrashLoop().observe([exited("x", 100.0)], NEW, now=100.0)
    fixed, fresh = state.observe([exited("x", 100.0, hash_=NEW)], "fixedhash0", now=101.0)
    assert (fixed.template_hash, fixed.exits, fixed.retry_at, fresh) == ("fixedhash0", 0, 0.0, ())


@pytest.mark.parametrize(
    ("replacement", "now", "over"),
    [
        (running("r", created=115.0, ready_since=120.0), 180.0, True),  # ready for 60 s
        (running("r", created=115.0, ready_since=120.0), 179.0, False),  # not yet
        (running("r", created=115.0), 500.0, False),  # never ready
        (running("r", created=90.0, ready_since=95.0), 500.0, False),  # older than the exit
    ],
)
def test_the_crash_loop_ends_once_a_replacement_stayed_ready(
    replacement: PodView, now: float, over: bool
) -> None:
    state, _ = CrashLoop().observe([exited("x", 100.0)], NEW, now=100.0)
    after, _ = state.observe([replacement], NEW, now=now)
    assert (after.exits == 0) is over
    assert (after.trouble() is None) is over


def test_trouble_says_the_cause_and_the_back_off() -> None:
    state, _ = CrashLoop().observe([exited("a", 100.0)], NEW, now=100.0)
    trouble = state.trouble()
    assert trouble is not None
    assert trouble.reason == "WorkerCrashLoop"
    assert trouble.message == (
        "worker exited with code 1: ModuleNotFoundError: No module named 'nosuchmodule' "
        "(replaced after a 10s back-off)"
    )
    state, _ = state.observe([exited("b", 111.0)], NEW, now=111.0)
    second = state.trouble()
    assert second is not None
    assert second.message.endswith("(2 exits in a row; replaced after a 20s back-off)")


# --- refused pods, and the pool's health as a whole -------------------------------------


def test_refused_pods_back_off_and_creating_one_clears_it() -> None:
    health = PoolHealth(generation=1)
    message = refused_message('pods "demo-" is forbidden: exceeded quota: none')
    delays = []
    for now in (100.0, 200.0, 300.0, 400.0, 500.0, 600.0):
        health = health.create_refused(message, now)
        delays.append(health.hold_until - now)
    assert delays == [5.0, 10.0, 20.0, 40.0, 60.0, 60.0]
    trouble = health.trouble()
    assert trouble is not None
    assert (trouble.reason, trouble.message) == ("PodCreateFailed", message)
    assert health.created().trouble() is None
    assert health.created().hold_until == 0.0


def test_a_changed_spec_is_tried_at_once() -> None:
    health = PoolHealth(generation=1).create_refused(refused_message("no"), 100.0)
    same, _ = health.observe([], NEW, 1, now=101.0)
    assert same.hold_until == 105.0
    changed, _ = health.observe([], NEW, 2, now=101.0)
    assert (changed.hold_until, changed.trouble()) == (0.0, None)


def test_a_refusal_is_said_before_a_crash_loop_and_both_hold() -> None:
    health, _ = PoolHealth(generation=1).observe([exited("x", 100.0)], NEW, 1, now=100.0)
    health = health.create_refused(refused_message("quota"), 109.0)
    assert health.hold_until == 114.0  # the later of 110 (crash) and 114 (refused)
    reasons = [h.trouble() for h in (health, health.created())]
    assert [t.reason if t else None for t in reasons] == ["PodCreateFailed", "WorkerCrashLoop"]


def test_a_pool_whose_workers_always_crash_creates_few_pods() -> None:
    """Simulated: every worker exits 1 s after its pod is created; the controller plans
    every second.  Like CrashLoopBackOff: 10 s, 20 s, 40 s... capped at 5 minutes."""
    health, pods, names = PoolHealth(generation=1), [], itertools.count()
    created_at: list[float] = []
    for now in range(0, 1200):
        pods = [exited(p.name, p.created + 1) if now >= p.created + 1 else p for p in pods]
        health, _ = health.observe(pods, NEW, 1, now=float(now))
        result = plan(1, NEW, pods, now=float(now), hold_until=health.hold_until)
        pods = [p for p in pods if p.name not in result.delete]
        for _ in range(result.create):
            pods.append(running(f"w{next(names)}", created=float(now)))
            created_at.append(float(now))
    assert created_at[:6] == [0.0, 11.0, 32.0, 73.0, 154.0, 315.0]
    assert sum(1 for t in created_at if t < 40) == 3
    gaps = [b - a for a, b in itertools.pairwise(created_at)]
    assert max(gaps) == 301.0  # 5 minutes of back-off after the exit 1 s in
    assert health.trouble() is not None


@pytest.mark.parametrize(
    ("cause", "said"),
    [
        # A quota names the pod by the name generated for that one try.
        (
            'pods "demo-80a1bddf81-6kkpf" is forbidden: exceeded quota: q, requested: pods=1',
            'pods "demo-80a1bddf81-" is forbidden: exceeded quota: q, requested: pods=1',
        ),
        # Admission before the name was generated: said as it is.
        (
            'pods "demo-80a1bddf81-" is forbidden: serviceaccount "missing" not found',
            'pods "demo-80a1bddf81-" is forbidden: serviceaccount "missing" not found',
        ),
        # Another pool's (or a longer) name is left alone.
        ('pod "demo-80a1bddf81-abcdefg" exists', 'pod "demo-80a1bddf81-abcdefg" exists'),
    ],
)
def test_a_refusal_says_the_same_thing_at_every_try(cause: str, said: str) -> None:
    assert refused_message(cause, "demo-80a1bddf81-") == f"cannot create worker pods: {said}"
