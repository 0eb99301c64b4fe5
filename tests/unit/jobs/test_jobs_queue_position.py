"""A waiting job's place in its pool's queue (``JobQueue.ahead`` / ``position``), checked
against the order ``best`` really serves: the position-1 job is the next one ``best``
returns for a worker offering every skill, and so on down the queue."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from shiftboss.jobs.queue import Ahead, JobQueue

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SKILLS = ("a", "b", "c")


def random_queue(seed: int, count: int) -> JobQueue:
    rng = random.Random(seed)
    queue = JobQueue(aging_seconds_per_level=60)
    for i in range(count):
        created = T0 + timedelta(seconds=rng.randrange(0, 900))
        queue.push(f"j{i}", rng.choice(SKILLS), rng.randrange(0, 11), created, arrival=i)
    return queue


def test_positions_follow_the_order_best_serves():
    for seed in range(20):
        queue = random_queue(seed, 60)
        # Some jobs leave and come back with another priority: stale heap slots.
        queue.discard("j3")
        queue.push("j5", "b", 10, T0 + timedelta(seconds=5), arrival=5)
        while len(queue):
            positions = {uid: queue.position(uid) for uid in list(queue._entries)}
            assert sorted(positions.values()) == list(range(1, len(queue) + 1))
            first = queue.best(SKILLS)
            assert first is not None and positions[first] == 1, seed
            queue.discard(first)


def test_a_job_not_queued_has_no_position():
    queue = random_queue(1, 3)
    assert queue.position("nope") is None and queue.ahead("nope") is None
    queue.discard("j0")
    assert queue.position("j0") is None


def test_ahead_says_why_each_job_is_before():
    queue = JobQueue(aging_seconds_per_level=60)
    queue.push("old-low", "a", 1, T0, arrival=0)  # aged 10 minutes: before a 5 now
    queue.push("high", "b", 9, T0 + timedelta(seconds=600), arrival=1)
    queue.push("same-old", "a", 5, T0 + timedelta(seconds=590), arrival=2)
    queue.push("me", "c", 5, T0 + timedelta(seconds=600), arrival=3)
    queue.push("same-later", "a", 5, T0 + timedelta(seconds=600), arrival=4)
    queue.push("low", "a", 4, T0 + timedelta(seconds=600), arrival=5)
    ahead = queue.ahead("me")
    assert ahead == Ahead(higher_priority=1, same_priority=1, lower_priority=1)
    assert ahead.position == 4
    assert (queue.position("old-low"), queue.position("high")) == (1, 2)
    assert queue.position("low") == 6


def test_best_for_one_skill_may_pass_a_job_ahead():
    """The position is the queue's order; a worker offering only skill b takes the b job
    at position 2 before the a job at position 1 (documented, not a bug)."""
    queue = JobQueue(aging_seconds_per_level=60)
    queue.push("a-job", "a", 9, T0, arrival=0)
    queue.push("b-job", "b", 1, T0, arrival=1)
    assert (queue.position("a-job"), queue.position("b-job")) == (1, 2)
    assert queue.best(["b"]) == "b-job"
