"""Throughput and latency: sequential jobs on an idle warm pool, and bursts of no-op
jobs created as fast as one bounded client can, with the API server's request counter
read before and after each."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from shiftboss.bench.cluster import NAMESPACE, POOL
from shiftboss.bench.context import Bench
from shiftboss.bench.creator import SB_JOBS, Created, create_all, create_one, noop_job
from shiftboss.bench.recorder import TERMINAL, Recorder
from shiftboss.bench.stats import Latency, rate

IDLE_JOB_TIMEOUT = 60.0


@dataclass(frozen=True)
class Outcome:
    """How a set of jobs ended: latencies and what failed, from the watch."""

    jobs: int
    succeeded: int
    not_succeeded: int
    create_errors: int
    create_to_running: Latency
    create_to_done: Latency


def outcome(recorder: Recorder, created: Created, names: list[str]) -> Outcome:
    seen, at = recorder.seen, created.at
    running = [seen[n]["Running"] - at[n] for n in names if "Running" in seen.get(n, {})]
    done = [seen[n]["Succeeded"] - at[n] for n in names if "Succeeded" in seen.get(n, {})]
    errors = sum(1 for n in names if n in created.errors)
    return Outcome(
        len(names),
        len(done),
        len(names) - len(done) - errors,
        errors,
        Latency.of(running),
        Latency.of(done),
    )


@dataclass(frozen=True)
class BurstResult:
    outcome: Outcome
    seconds: float
    jobs_per_second: float
    create_seconds: float
    creates_per_second: float
    creators: int
    requests_per_job: dict[str, float]
    other_requests: dict[str, int] = field(default_factory=dict)


async def idle_pool(bench: Bench, count: int) -> Outcome:
    """``count`` jobs one after the other, each created once the last one is done."""
    names = [f"idle-{i}" for i in range(count)]
    make = noop_job(POOL)
    for i, name in enumerate(names):
        await create_one(bench.client, SB_JOBS.path(NAMESPACE), name, make(name, i), bench.created)
        if name not in bench.created.errors:
            await bench.jobs.wait([name], TERMINAL, IDLE_JOB_TIMEOUT)
    return outcome(bench.jobs, bench.created, names)


def last_terminal(recorder: Recorder, names: list[str]) -> float:
    """When the last of ``names`` was seen finished."""
    seen = recorder.seen
    return max(t for n in names for phase, t in seen[n].items() if phase in TERMINAL)


def burst_timeout(count: int) -> float:
    """Generous but bounded: 10 jobs/s at worst, never under two minutes."""
    return max(120.0, count / 10)


async def burst(bench: Bench, count: int, prefix: str) -> BurstResult:
    """``count`` jobs created at once; timed from the first create to the last done."""
    names = [f"{prefix}-{i}" for i in range(count)]
    before = await bench.scraper.scrape()
    started = time.monotonic()
    await create_all(
        bench.client,
        SB_JOBS.path(NAMESPACE),
        names,
        noop_job(POOL),
        bench.created,
        bench.sizes.creators,
    )
    create_seconds = time.monotonic() - started
    sent = bench.created.succeeded(names)
    await bench.jobs.wait(sent, TERMINAL, burst_timeout(count))
    last_done = last_terminal(bench.jobs, sent)
    requests = await bench.requests_since(before)
    seconds = last_done - started
    return BurstResult(
        outcome=outcome(bench.jobs, bench.created, names),
        seconds=round(seconds, 2),
        jobs_per_second=rate(len(sent), seconds),
        create_seconds=round(create_seconds, 2),
        creates_per_second=rate(len(sent), create_seconds),
        creators=bench.sizes.creators,
        requests_per_job=requests.per(len(sent)),
        other_requests=requests.other,
    )
