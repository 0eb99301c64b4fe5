"""Aging in the job queue: priority first among jobs of about the same age, and a bound on
how long a low-priority job waits behind a steady stream of high-priority ones
(docs/scheduling.md).  Time is simulated and costs are counted, nothing is timed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from dispatching import claim_one, submit, worker
from fake_store import at

from shiftboss.jobs.queue import JobQueue
from shiftboss.jobs.settings import DispatchSettings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEVEL = DispatchSettings.aging_seconds_per_level  # 60 s
#: Aging so slow that no job ever waits long enough for it to matter: strict priority.
NO_AGING = 1e9


def drain(queue: JobQueue) -> list[str]:
    served = []
    while (uid := queue.best(["s"])) is not None:
        served.append(uid)
        queue.discard(uid)
    return served


def test_the_default_rate_is_a_minute_per_level():
    assert JobQueue().aging_seconds_per_level == 60.0


def test_created_together_priority_decides():
    queue = JobQueue()
    priorities = list(range(11))
    random.Random(3).shuffle(priorities)
    for arrival, priority in enumerate(priorities):
        queue.push(f"p{priority}", "s", priority, T0, arrival)
    assert drain(queue) == [f"p{priority}" for priority in range(10, -1, -1)]


def test_within_a_level_first_created_then_first_seen_goes_first():
    queue = JobQueue()
    queue.push("second-seen", "s", 5, T0 + timedelta(seconds=1), 0)
    queue.push("third-seen", "s", 5, T0 + timedelta(seconds=1), 1)
    queue.push("oldest", "s", 5, T0, 2)
    queue.push("newest", "s", 5, T0 + timedelta(seconds=LEVEL * 20), 3)
    assert drain(queue) == ["oldest", "second-seen", "third-seen", "newest"]


@pytest.mark.parametrize(
    ("low", "high", "later_by", "first"),
    [
        (0, 10, 10 * LEVEL - 1, "high"),  # created less than 10 levels later: still first
        (0, 10, 10 * LEVEL, "high"),  # exactly at the bound: a tie goes to the priority
        (0, 10, 10 * LEVEL + 1, "low"),  # past it: the old low-priority job goes first
        (5, 6, LEVEL - 1, "high"),
        (5, 6, LEVEL + 1, "low"),
        (3, 3, 0.5, "low"),  # same level: plain age
    ],
)
def test_an_old_low_priority_job_passes_a_new_high_one_only_past_the_bound(
    low: int, high: int, later_by: float, first: str
):
    queue = JobQueue()
    queue.push("low", "s", low, T0, 0)
    queue.push("high", "s", high, T0 + timedelta(seconds=later_by), 1)
    assert queue.best(["s"]) == first


@pytest.mark.parametrize(("aging", "first"), [(LEVEL, "old-low"), (NO_AGING, "new-high")])
def test_with_and_without_aging(aging: float, first: str):
    queue = JobQueue(aging)
    queue.push("old-low", "s", 0, T0, 0)
    queue.push("new-high", "s", 10, T0 + timedelta(hours=1), 1)
    assert queue.best(["s"]) == first


def test_aging_compares_heads_across_skills_too():
    queue = JobQueue()
    queue.push("old-low", "a", 1, T0, 0)
    queue.push("new-high", "b", 9, T0 + timedelta(seconds=8 * LEVEL + 1), 1)
    assert queue.best(["b", "a"]) == "old-low"


@pytest.mark.parametrize("rate", [0.0, -60.0, math.nan])
def test_the_rate_must_be_positive(rate: float):
    with pytest.raises(ValueError, match="positive"):
        JobQueue(rate)


@dataclass
class Stream:
    """One pool: ``backlog`` priority-10 jobs already queued, then each second
    ``arrivals`` more; the workers dispatch ``capacity`` jobs a second.  A priority-0 job
    arrives at second ``low_at``."""

    arrivals: int
    capacity: int
    backlog: int = 50
    low_at: int = 30

    def run(self, queue: JobQueue, seconds: int) -> tuple[int | None, int, int]:
        """(the low job's wait in seconds or None if never served, jobs ahead of it when
        it arrived, jobs served before it from then on)."""
        for i in range(self.backlog):
            queue.push(f"backlog-{i}", "s", 10, T0, i)
        arrival = self.backlog
        ahead = served_meanwhile = 0
        for now in range(seconds):
            created = T0 + timedelta(seconds=now)
            for _ in range(self.arrivals):
                queue.push(f"high-{arrival}", "s", 10, created, arrival)
                arrival += 1
            if now == self.low_at:
                ahead = len(queue)
                queue.push("low", "s", 0, created, arrival)
                arrival += 1
            for _ in range(self.capacity):
                uid = queue.best(["s"])
                assert uid is not None
                queue.discard(uid)
                if uid == "low":
                    return now - self.low_at, ahead, served_meanwhile
                if now >= self.low_at:
                    served_meanwhile += 1
        return None, ahead, served_meanwhile


@pytest.mark.parametrize(("arrivals", "capacity"), [(1, 1), (3, 4), (4, 4)])
def test_a_stream_of_high_priority_jobs_delays_a_low_one_at_most_ten_levels(
    arrivals: int, capacity: int
):
    stream = Stream(arrivals, capacity)
    wait, ahead, _ = stream.run(JobQueue(), seconds=stream.low_at + 30 * 60)
    # Workers keeping up with the stream: 10 levels, plus the backlog ahead of it.
    assert wait is not None
    assert wait <= 10 * LEVEL + math.ceil(ahead / capacity)
    if arrivals == capacity:  # workers saturated: it waits out all 10 levels, no less
        assert wait >= 10 * LEVEL


def test_a_stream_faster_than_the_workers_still_lets_the_low_job_through():
    stream = Stream(arrivals=3, capacity=2)
    wait, ahead, served_meanwhile = stream.run(JobQueue(), seconds=stream.low_at + 60 * 60)
    assert wait is not None
    # Served before every job created more than 10 levels after it (a tie at exactly 10
    # levels goes to the priority): only those already ahead and the next 10 levels' worth.
    assert served_meanwhile <= ahead + stream.arrivals * (10 * LEVEL + 1)


def test_without_aging_the_stream_starves_the_low_job():
    stream = Stream(arrivals=1, capacity=1)
    wait, _, served_meanwhile = stream.run(JobQueue(NO_AGING), seconds=stream.low_at + 30 * 60)
    assert wait is None
    assert served_meanwhile == 30 * 60


@pytest.mark.parametrize(("aging", "first"), [(LEVEL, "old-low"), (NO_AGING, "new-high")])
async def test_the_dispatcher_ages_its_queues_at_the_rate_of_its_settings(
    store, make_dispatcher, aging: float, first: str
):
    dispatcher = make_dispatcher(settings={"aging_seconds_per_level": aging})
    submit(store, dispatcher, "new-high", priority=10, created=at(10 * LEVEL + 1))
    submit(store, dispatcher, "old-low", priority=0, created=at(0))
    assert (await claim_one(dispatcher, worker())).job.name == first
