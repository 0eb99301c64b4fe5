"""In-process costs of the dispatcher's hot structures, at several sizes: what one claim,
one queue push, one timer and one watched Job cost the operator's CPU, without the API
server in the way (the end-to-end claim round trip is measured by ``scale``).

Each figure is the median over a few rounds of microseconds per operation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shiftboss.jobs.book import JobBook
from shiftboss.jobs.queue import JobQueue
from shiftboss.jobs.timerheap import TimerHeap
from shiftboss.jobs.tracked import TrackedJob

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SKILLS = ("skill-0", "skill-1", "skill-2", "skill-3")
ROUNDS = 3


def _per_op_us(run: Callable[[], tuple[int, float]]) -> float:
    """Median over rounds of µs per operation; ``run`` returns (operations, seconds),
    timing only the operations (not its own set-up)."""
    samples = []
    for _ in range(ROUNDS):
        count, elapsed = run()
        samples.append(elapsed / max(count, 1) * 1e6)
    return round(statistics.median(samples), 3)


def _timed(body: Callable[[], int]) -> tuple[int, float]:
    started = time.perf_counter()
    count = body()
    return count, time.perf_counter() - started


def _filled_queue(size: int) -> JobQueue:
    queue = JobQueue()
    for i in range(size):
        queue.push(f"job-{i}", SKILLS[i % 4], i % 11, T0 + timedelta(seconds=i % 3600), i)
    return queue


def _job_object(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {
            "name": f"job-{i}",
            "namespace": "bench",
            "uid": f"uid-{i}",
            "resourceVersion": str(1000 + i),
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {"pool": "pool", "skill": SKILLS[i % 4], "params": {"n": i}},
    }


def run_structures(sizes: Sequence[int]) -> dict[str, Any]:
    """Per size (number of queued jobs / armed timers): µs per claim (best + remove),
    per queue push, per timer armed and fired, per Job parsed and tracked."""
    results: dict[str, Any] = {}
    for size in sizes:

        def claim(size: int = size) -> tuple[int, float]:
            queue = _filled_queue(size)

            def take() -> int:
                for served in range(min(size, 10_000)):
                    uid = queue.best(SKILLS)
                    if uid is None:
                        return served
                    queue.discard(uid)
                return min(size, 10_000)

            return _timed(take)

        def push(size: int = size) -> tuple[int, float]:
            return _timed(lambda: len(_filled_queue(size)))

        def timers(size: int = size) -> tuple[int, float]:
            def arm_and_fire() -> int:
                heap: TimerHeap[int] = TimerHeap()
                for i in range(size):
                    heap.arm(i, float(i))
                fired = 0
                for tick in range(0, size + 250, 250):
                    fired += len(heap.pop_due(float(tick)))
                return fired

            return _timed(arm_and_fire)

        objects = [_job_object(i) for i in range(min(size, 20_000))]

        def track(objects: list[dict[str, Any]] = objects) -> tuple[int, float]:
            book = JobBook(restore_grace_seconds=30, blocked_check_seconds=2)

            def parse_and_track() -> int:
                for obj in objects:
                    book.track(TrackedJob.from_object(obj))
                return len(objects)

            return _timed(parse_and_track)

        results[str(size)] = {
            "claim_us": _per_op_us(claim),
            "push_us": _per_op_us(push),
            "timer_arm_and_fire_us": _per_op_us(timers),
            "parse_and_track_us": _per_op_us(track),
        }
    return results


if __name__ == "__main__":
    import json
    import sys

    chosen = [int(arg) for arg in sys.argv[1:]] or [1_000, 100_000]
    print(json.dumps(run_structures(chosen), indent=2))
