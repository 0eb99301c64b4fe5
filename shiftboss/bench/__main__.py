"""``python -m shiftboss.bench [bench|scale]``: run the workloads, print the table,
write the JSON (see the package docstring for what is measured and the sizes)."""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from shiftboss.bench import ceiling, scale
from shiftboss.bench.apiserver_metrics import MetricsScraper
from shiftboss.bench.bursts import burst, burst_timeout, idle_pool
from shiftboss.bench.cluster import (
    CEILING_NAMESPACE,
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    NAMESPACE,
    POOL,
    ROOT,
    BenchCluster,
)
from shiftboss.bench.context import Bench
from shiftboss.bench.creator import SB_JOBS, Created
from shiftboss.bench.peer import batch_burst
from shiftboss.bench.profile import Profiler
from shiftboss.bench.recorder import TERMINAL, Recorder, shiftboss_phase
from shiftboss.bench.report import machine, render, render_scale, versions, write_json
from shiftboss.bench.sizes import Sizes
from shiftboss.bench.sustained import sustained
from shiftboss.kube import KubeClient, KubeConfig

OUT = ROOT / "bench-results"
Workload = Callable[[Bench], Awaitable[dict[str, Any]]]


def say(started: float, message: str) -> None:
    print(f"[bench {time.monotonic() - started:6.0f}s] {message}", flush=True)


async def bench_workloads(bench: Bench, started: float) -> dict[str, Any]:
    sizes, world = bench.sizes, bench.world
    say(started, f"ceiling: {sizes.ceiling_ops} creates + patches at {sizes.ceiling_levels}")
    limit = await ceiling.measure(
        bench.client, CEILING_NAMESPACE, sizes.ceiling_ops, sizes.ceiling_levels
    )
    say(started, f"warm pool: {sizes.workers} workers x concurrency {sizes.concurrency}")
    await asyncio.to_thread(world.warm_pool, POOL, sizes.workers, sizes.concurrency)
    rss_start = world.operator_rss()
    say(started, f"idle pool: {sizes.idle_jobs} sequential jobs")
    idle = await idle_pool(bench, sizes.idle_jobs)
    bursts: dict[str, Any] = {}
    profile: dict[str, Any] | None = None
    for size in sizes.bursts:
        say(started, f"burst of {size} jobs")
        if sizes.profile and size == max(sizes.bursts):
            out = OUT / "profile-operator.txt"
            out.unlink(missing_ok=True)
            with Profiler(world.operator_pid, out, world.logs / "py-spy.log") as profiler:
                result = await burst(bench, size, f"b{size}")
            profile = {"file": str(out.relative_to(ROOT)), "top": profiler.top(15)}
        else:
            result = await burst(bench, size, f"b{size}")
        bursts[str(size)] = asdict(result)
    say(started, f"batch/v1 peer: {sizes.peer_jobs} Jobs")
    peer = await batch_burst(bench, sizes.peer_jobs)
    finished = len(bench.created.at) - len(bench.created.errors)
    memory = {
        "rss_mib_start": rss_start,
        "rss_mib_finished": world.operator_rss(),
        "finished_jobs": finished,
    }
    say(started, f"restart with {finished} Jobs present, {sizes.restart_queued} created meanwhile")
    restart = await scale.restart(bench, POOL, finished, sizes.restart_queued)
    queued = [n for n in bench.created.at if n.startswith("restart-")]
    await bench.jobs.wait(queued, TERMINAL, burst_timeout(len(queued)))
    steady: dict[str, Any] | None = None
    if sizes.sustained_seconds:
        largest = bursts[str(max(sizes.bursts))]["jobs_per_second"]
        target = sizes.sustained_fraction * largest
        say(started, f"sustained: {target:.1f} jobs/s for {sizes.sustained_seconds} s")
        steady = asdict(await sustained(bench, target, sizes.sustained_seconds))
    return {
        "ceiling": asdict(limit),
        "idle_pool": asdict(idle),
        "bursts": bursts,
        "peer": asdict(peer),
        "memory": memory,
        "restart": asdict(restart),
        "sustained": steady,
        "structures": scale.structures(list(sizes.bursts)),
        "profile": profile,
        "backfill": "not built yet",
    }


async def scale_workloads(bench: Bench, started: float) -> dict[str, Any]:
    say(started, f"{bench.sizes.scale_queued} queued Jobs, restart, claims")
    return {"scale": asdict(await scale.queued_jobs(bench, bench.sizes.scale_queued))}


async def with_bench(world: BenchCluster, sizes: Sizes, workload: Workload) -> dict[str, Any]:
    config = KubeConfig.from_file(world.kubeconfig)
    async with KubeClient(config) as client:
        scraper = MetricsScraper(config)
        jobs = Recorder(client, SB_JOBS.path(NAMESPACE), shiftboss_phase)
        await jobs.start()
        try:
            return await workload(Bench(world, client, scraper, jobs, sizes, Created()))
        finally:
            await jobs.stop()
            await scraper.close()


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds the with-blocks: every child is stopped


def main(argv: list[str]) -> int:
    mode = argv[1] if len(argv) > 1 else "bench"
    if mode not in ("bench", "scale"):
        print(f"usage: python -m shiftboss.bench [bench|scale] (got {mode!r})", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    sizes = Sizes.from_env()
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": machine(),
        "versions": versions(ROOT),
        "settings": {
            **sizes.as_dict(),
            "operator": {"lease_seconds": LEASE_SECONDS, "heartbeat_seconds": HEARTBEAT_SECONDS},
        },
    }
    logs = OUT / "logs"
    say(started, f"starting the local control plane and the operator (logs in {logs})")
    workload: Workload = functools.partial(
        bench_workloads if mode == "bench" else scale_workloads, started=started
    )
    with BenchCluster(logs) as world:
        results.update(asyncio.run(with_bench(world, sizes, workload)))
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    name = "bench.json" if mode == "bench" else "bench-scale.json"
    write_json(results, OUT / name)
    print()
    print(render(results) if mode == "bench" else render_scale(results))
    print(f"\nwritten to {Path('bench-results') / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
