"""Memory and restart at scale.

*Restart to first dispatch*: the operator is killed (SIGKILL), jobs are created while
it is down, and it is started again; "first dispatch" is the first of those jobs (or of
any already queued) handed to a worker: the earlier of the probe worker's first claim
answer (it polls every 50 ms, so a real worker's reconnect backoff is not counted) and
the first of them seen Running. ``make bench-scale`` does it with 100,000 queued Jobs
(a pool without workers), and times the claim round trip with that queue.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shiftboss.bench.cluster import NAMESPACE, pool_manifest
from shiftboss.bench.context import Bench
from shiftboss.bench.creator import SB_JOBS, create_all, create_one, noop_job
from shiftboss.bench.probe import ProbeWorker, external_token
from shiftboss.bench.recorder import TERMINAL
from shiftboss.bench.stats import Latency, rate

STRUCTURES = "shiftboss.bench.structures"
RESTART_TIMEOUT = 180.0
SCALE_POOL = "scale"


@dataclass(frozen=True)
class Restart:
    jobs_present: int
    queued_across_restart: int
    seconds_to_ready: float
    seconds_to_first_dispatch: float
    first_dispatch_by: str
    rss_mib_after: float


async def restart(bench: Bench, pool: str, jobs_present: int, queued: int) -> Restart:
    """Kill the operator, create ``queued`` jobs of ``pool`` while it is down, start it,
    and time the first dispatch (the jobs are left to finish)."""
    world = bench.world
    assert world.operator is not None
    token = external_token(world, NAMESPACE)
    world.kill_operator()
    names = [f"restart-{len(world.operator_starts)}-{i}" for i in range(queued)]
    make = noop_job(pool)
    for i, name in enumerate(names):
        await create_one(bench.client, SB_JOBS.path(NAMESPACE), name, make(name, i), bench.created)
    started = world.start_operator(wait=False)
    stop = asyncio.Event()
    async with ProbeWorker(world.operator.url, token, pool) as probe:
        claimed = asyncio.create_task(probe.first_claim(RESTART_TIMEOUT, stop))
        running = asyncio.create_task(
            bench.jobs.wait(names, ["Running", *TERMINAL], RESTART_TIMEOUT, any_one=True)
        )
        await asyncio.to_thread(world.wait_operator_ready, RESTART_TIMEOUT)
        ready = time.monotonic()
        await asyncio.wait([claimed, running], return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        probe_at = await claimed
        running.cancel()
    watched = bench.jobs.first(names, ["Running", *TERMINAL])
    candidates = [(t, by) for t, by in ((probe_at, "probe"), (watched, "watch")) if t is not None]
    if not candidates:
        raise TimeoutError(f"no job was dispatched within {RESTART_TIMEOUT:.0f}s of a restart")
    first, by = min(candidates)
    return Restart(
        jobs_present=jobs_present,
        queued_across_restart=queued,
        seconds_to_ready=round(ready - started, 2),
        seconds_to_first_dispatch=round(first - started, 2),
        first_dispatch_by=by,
        rss_mib_after=world.operator_rss(),
    )


def structures(sizes: Sequence[int]) -> dict[str, Any] | None:
    """The dispatcher's in-process queue and timer costs, when that module exists."""
    if importlib.util.find_spec(STRUCTURES) is None:
        return None
    module = importlib.import_module(STRUCTURES)
    result: dict[str, Any] = module.run_structures(sizes)
    return result


@dataclass(frozen=True)
class ScaleResult:
    queued: int
    create_seconds: float
    creates_per_second: float
    create_errors: int
    #: What the pool's status counted as queued when the operator's RSS was read.
    queued_seen: int
    rss_mib_before: float
    rss_mib_queued: float
    restart: Restart
    claim_round_trip: Latency
    structures: dict[str, Any] | None


async def queued_jobs(bench: Bench, count: int) -> ScaleResult:
    """``count`` Jobs queued for a pool without workers; memory, restart and claims."""
    world = bench.world
    world.apply(NAMESPACE, pool_manifest(SCALE_POOL, 0, 1))
    rss_before = world.operator_rss()
    names = [f"q-{i}" for i in range(count)]
    started = time.monotonic()
    await create_all(
        bench.client,
        SB_JOBS.path(NAMESPACE),
        names,
        noop_job(SCALE_POOL),
        bench.created,
        bench.sizes.creators,
    )
    seconds = time.monotonic() - started
    errors = sum(1 for n in names if n in bench.created.errors)
    queued_seen = await wait_queued(bench, SCALE_POOL, count - errors, max(120.0, count / 100))
    rss_queued = world.operator_rss()
    restarted = await restart(bench, SCALE_POOL, count, 1)
    token = external_token(world, NAMESPACE)
    assert world.operator is not None
    async with ProbeWorker(world.operator.url, token, SCALE_POOL) as probe:
        await probe.register()
        claims = await probe.claim_round_trips(bench.sizes.scale_claims)
    return ScaleResult(
        queued=count,
        create_seconds=round(seconds, 1),
        creates_per_second=rate(count - errors, seconds),
        create_errors=errors,
        queued_seen=queued_seen,
        rss_mib_before=rss_before,
        rss_mib_queued=rss_queued,
        restart=restarted,
        claim_round_trip=Latency.of(claims),
        structures=structures([1_000, 10_000, count]),
    )


async def wait_queued(bench: Bench, pool: str, count: int, timeout: float) -> int:
    """Until the pool's status counts ``count`` queued jobs (the operator holds them
    all) or ``timeout``; returns the last count seen."""
    path = f"/apis/shiftboss.io/v1alpha1/namespaces/{NAMESPACE}/workerpools/{pool}"
    deadline = time.monotonic() + timeout
    queued = 0
    while time.monotonic() < deadline:
        status = (await bench.client.get(path)).get("status") or {}
        queued = int(status.get("queuedJobs") or 0)
        if queued >= count:
            break
        await asyncio.sleep(1.0)
    return queued
