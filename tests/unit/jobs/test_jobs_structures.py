"""The dispatcher's data structures: the per-skill heap queue and the timer heap, checked
against a brute-force model, and at 100,000 entries (each case runs in about a second).

Their cost is counted in heap operations, not timed (timings are `make bench`'s job)."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from shiftboss.jobs import queue as queue_module
from shiftboss.jobs import timerheap
from shiftboss.jobs.queue import JobQueue
from shiftboss.jobs.timerheap import TimerHeap

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def count_pops(monkeypatch, module) -> Callable[[], int]:
    """Count the heap pops ``module`` makes (each is O(log n))."""
    pops = 0
    real_heappop = heapq.heappop

    def counting(heap):
        nonlocal pops
        pops += 1
        return real_heappop(heap)

    monkeypatch.setattr(module.heapq, "heappop", counting)
    return lambda: pops


def test_the_queue_serves_priority_then_age_then_arrival():
    queue = JobQueue()
    queue.push("old-low", "s", 1, T0, 0)
    queue.push("new-high", "s", 9, T0 + timedelta(seconds=5), 1)
    queue.push("same-second-later", "s", 9, T0 + timedelta(seconds=5), 2)
    queue.push("old-high", "s", 9, T0, 3)
    served = []
    while (uid := queue.best(["s"])) is not None:
        served.append(uid)
        queue.discard(uid)
    assert served == ["old-high", "new-high", "same-second-later", "old-low"]
    assert len(queue) == 0


def test_a_claim_sees_only_its_skills_and_the_best_head_among_them():
    queue = JobQueue()
    queue.push("a1", "a", 5, T0 + timedelta(seconds=2), 0)
    queue.push("b1", "b", 5, T0 + timedelta(seconds=1), 1)
    queue.push("c1", "c", 10, T0, 2)
    assert queue.best(["a"]) == "a1"
    assert queue.best(["a", "b"]) == "b1"  # older, same priority
    assert queue.best(["a", "b", "c"]) == "c1"  # higher priority
    assert queue.best(["nobody-offers"]) is None
    assert queue.best([]) is None


def test_pushing_again_moves_a_job_and_discarding_is_idempotent():
    queue = JobQueue()
    queue.push("x", "s", 1, T0, 0)
    queue.push("y", "s", 5, T0, 1)
    queue.push("x", "s", 9, T0, 0)  # its priority was raised
    assert queue.best(["s"]) == "x"
    queue.push("x", "t", 9, T0, 0)  # now for another skill
    assert queue.best(["s"]) == "y"
    assert queue.best(["t"]) == "x"
    queue.discard("x")
    queue.discard("x")
    assert "x" not in queue
    assert len(queue) == 1


def test_the_queue_matches_a_sorted_model_under_random_operations():
    rng = random.Random(7)
    queue = JobQueue()
    model: dict[str, tuple[float, int, int, str, str]] = {}
    skills = ["a", "b", "c"]
    for step in range(5000):
        uid = f"j{rng.randrange(400)}"
        action = rng.random()
        if action < 0.5:
            skill, priority = rng.choice(skills), rng.randrange(11)
            # Created over several aging levels, so that aging decides some orders.
            created = T0 + timedelta(seconds=rng.randrange(600))
            queue.push(uid, skill, priority, created, step)
            virtual = created.timestamp() - priority * queue.aging_seconds_per_level
            model[uid] = (virtual, -priority, step, uid, skill)
        elif action < 0.8:
            queue.discard(uid)
            model.pop(uid, None)
        else:
            offered = rng.sample(skills, rng.randrange(1, 4))
            ranks = sorted(r for r in model.values() if r[4] in offered)
            assert queue.best(offered) == (ranks[0][3] if ranks else None)
        assert len(queue) == len(model)


def test_100k_queued_jobs_a_claim_costs_a_few_heap_operations(monkeypatch):
    queue = JobQueue()
    n = 100_000
    for i in range(n):
        queue.push(f"job-{i}", f"skill-{i % 4}", i % 11, T0 + timedelta(seconds=i % 3600), i)
    pops = count_pops(monkeypatch, queue_module)
    skills = ["skill-0", "skill-1", "skill-2", "skill-3"]
    served: list[str] = []
    while len(served) < 10_000 and (uid := queue.best(skills)) is not None:
        queue.discard(uid)
        served.append(uid)
    # Each claim drops the slot its predecessor left at a head: one pop per claim.
    assert pops() <= len(served) + len(skills)
    # Created over an hour: aging (60 s a level) lets old low-priority jobs pass new high.
    expected = sorted(range(n), key=lambda i: (i % 3600 - 60 * (i % 11), -(i % 11), i))
    assert served == [f"job-{i}" for i in expected[:10_000]]
    # Discards in the middle (cancellations) leave stale slots; rebuilding keeps them few.
    for i in range(20_000, n, 2):
        queue.discard(f"job-{i}")
    heap_slots = sum(len(h.slots) for h in queue._heaps.values())
    assert heap_slots <= 3 * len(queue) + 4 * 1024


def test_timers_fire_when_due_in_order_and_only_their_latest_arming():
    timers: TimerHeap[str] = TimerHeap()
    timers.arm("a", 10.0)
    timers.arm("b", 5.0)
    timers.arm("c", 7.0)
    timers.arm("a", 3.0)  # re-armed earlier
    timers.arm("c", 20.0)  # re-armed later
    timers.cancel("b")
    assert timers.pop_due(2.0) == []
    assert timers.pop_due(10.0) == ["a"]
    assert "a" not in timers
    assert timers.pop_due(19.0) == []
    assert "c" in timers
    assert timers.pop_due(25.0) == ["c"]
    assert len(timers) == 0


def test_the_timer_heap_matches_a_model_under_random_operations():
    rng = random.Random(11)
    timers: TimerHeap[int] = TimerHeap()
    model: dict[int, float] = {}
    now = 0.0
    for _ in range(20_000):
        key = rng.randrange(300)
        action = rng.random()
        if action < 0.6:
            when = now + rng.uniform(0, 50)
            timers.arm(key, when)
            model[key] = when
        elif action < 0.75:
            timers.cancel(key)
            model.pop(key, None)
        else:
            now += rng.uniform(0, 5)
            fired = timers.pop_due(now)
            due = sorted((when, key) for key, when in model.items() if when <= now)
            assert sorted(fired) == sorted(key for _, key in due)
            for key in fired:
                del model[key]
        assert len(timers) == len(model)


def test_100k_timers_a_tick_costs_what_is_due_not_what_exists(monkeypatch):
    timers: TimerHeap[int] = TimerHeap()
    n = 100_000
    for i in range(n):
        timers.arm(i, 1000.0 + i)  # one due per second, far into the future
    pops = count_pops(monkeypatch, timerheap)
    for tick in range(1000):
        assert timers.pop_due(float(tick)) == []
    assert pops() == 0  # an idle tick looks at the head only
    assert timers.pop_due(1000.0 + 9) == list(range(10))
    assert pops() == 10
    # Re-arming every timer (a resync) leaves stale slots that compaction bounds.
    for i in range(10, n):
        timers.arm(i, 2000.0 + i)
    assert len(timers._slots) <= 3 * n + 1024
    assert timers.pop_due(2000.0 + 99) == list(range(10, 100))
