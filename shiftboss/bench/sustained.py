"""Sustained load: jobs created at a steady rate (a fraction of the burst throughput)
for minutes, each with ``ttlSecondsAfterFinished`` so finished Jobs are deleted, with
latency and the operator's memory per minute.

"Flat" is judged first window against last: latency is flat when the last window's
p99 is at most twice the first's (or 50 ms above it, whichever is larger), memory when
the last RSS is at most 15 % above the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

from shiftboss.bench.bursts import outcome
from shiftboss.bench.cluster import NAMESPACE, POOL
from shiftboss.bench.context import Bench
from shiftboss.bench.creator import SB_JOBS, create_one, noop_job
from shiftboss.bench.recorder import TERMINAL
from shiftboss.bench.stats import Latency

TTL_SECONDS = 5
DRAIN_TIMEOUT = 120.0


@dataclass(frozen=True)
class Window:
    start_second: int
    jobs: int
    succeeded: int
    create_to_done: Latency
    rss_mib: float


@dataclass(frozen=True)
class SustainedResult:
    target_jobs_per_second: float
    seconds: int
    jobs: int
    succeeded: int
    errors: int
    windows: list[Window]
    latency_flat: bool
    memory_flat: bool
    jobs_deleted_by_ttl: int


def window_seconds(duration: int) -> int:
    """A minute, or half the run when it is shorter than two (first vs last)."""
    return max(1, min(60, duration // 2))


def latency_flat(first: Latency, last: Latency) -> bool:
    return last.p99_ms <= max(2 * first.p99_ms, first.p99_ms + 50)


def memory_flat(first_mib: float, last_mib: float) -> bool:
    return last_mib - first_mib <= 0.15 * first_mib


async def sustained(bench: Bench, jobs_per_second: float, duration: int) -> SustainedResult:
    """Create ``jobs_per_second`` jobs for ``duration`` seconds, then wait for them."""
    path, make = SB_JOBS.path(NAMESPACE), noop_job(POOL, ttl_seconds=TTL_SECONDS)
    total = int(jobs_per_second * duration)
    width = window_seconds(duration)
    names = [f"steady-{i}" for i in range(total)]
    rss: list[float] = []
    in_flight: set[asyncio.Task[None]] = set()
    gate = asyncio.Semaphore(bench.sizes.creators)

    async def create(i: int, name: str) -> None:
        async with gate:
            await create_one(bench.client, path, name, make(name, i), bench.created)

    started = time.monotonic()
    for i, name in enumerate(names):
        due = started + i / jobs_per_second
        while len(rss) * width <= due - started:  # one memory sample per window
            rss.append(bench.world.operator_rss())
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.create_task(create(i, name))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    sent = bench.created.succeeded(names)
    with contextlib.suppress(TimeoutError):  # those late are counted as not succeeded
        await bench.jobs.wait(sent, TERMINAL, DRAIN_TIMEOUT)
    windows = []
    for w, sample in enumerate(rss):
        chunk = [n for n in names if w * width <= bench.created.at[n] - started < (w + 1) * width]
        if not chunk:
            continue
        result = outcome(bench.jobs, bench.created, chunk)
        windows.append(
            Window(w * width, len(chunk), result.succeeded, result.create_to_done, sample)
        )
    whole = outcome(bench.jobs, bench.created, names)
    first, last = windows[0], windows[-1]
    return SustainedResult(
        target_jobs_per_second=round(jobs_per_second, 1),
        seconds=duration,
        jobs=total,
        succeeded=whole.succeeded,
        errors=total - whole.succeeded,
        windows=windows,
        latency_flat=latency_flat(first.create_to_done, last.create_to_done),
        memory_flat=memory_flat(first.rss_mib, last.rss_mib),
        jobs_deleted_by_ttl=len(bench.jobs.deleted & set(names)),
    )
