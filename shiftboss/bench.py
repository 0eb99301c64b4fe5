"""`make bench`: Shiftboss jobs through a warm pool, and the same work as batch/v1 Jobs,
side by side on the same local control plane.

Measures, from the client's side of a watch (so the numbers include the API server):
create→running and create→done latency on an idle pool (sequential jobs), throughput
and latency under a burst, API writes per job (watch events per job: each is one write),
the operator's memory with many finished jobs, and a burst of batch/v1 Jobs that run the
same computation as pods.  Prints a table and writes ``bench-results/bench.json``.

Sizes: ``SHIFTBOSS_BENCH_SEQUENTIAL`` (20), ``SHIFTBOSS_BENCH_BURST`` (200),
``SHIFTBOSS_BENCH_BATCH`` (20).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shiftboss.api.common import API_GROUP, API_VERSION
from shiftboss.kube import KubeClient, KubeConfig
from shiftboss.kube.client import Resource
from shiftboss.testing import LocalCluster
from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
JOBS = Resource(API_GROUP, API_VERSION, "jobs")
BATCH_JOBS = Resource("batch", "v1", "jobs")
TERMINAL = {"Succeeded", "Failed", "Cancelled"}


def _size(name: str, default: int) -> int:
    return int(os.environ.get(f"SHIFTBOSS_BENCH_{name}", default))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Recorder:
    """Watches a resource and notes, per object, when each phase was first seen and how
    many times the object was modified (one watch event per write)."""

    def __init__(
        self, client: KubeClient, path: str, phase_of: Callable[[dict[str, Any]], str | None]
    ) -> None:
        self.client, self.path, self.phase_of = client, path, phase_of
        self.seen: dict[str, dict[str, float]] = {}
        self.modifications: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listing = await self.client.get(self.path)
        self._task = asyncio.create_task(self._run(listing["metadata"]["resourceVersion"]))

    async def _run(self, version: str) -> None:
        async for event in self.client.watch(self.path, resource_version=version):
            if event["type"] == "BOOKMARK":
                continue
            obj = event["object"]
            name = obj["metadata"]["name"]
            if event["type"] == "MODIFIED":
                self.modifications[name] = self.modifications.get(name, 0) + 1
            phase = self.phase_of(obj)
            if phase:
                self.seen.setdefault(name, {}).setdefault(phase, time.monotonic())

    async def wait(self, names: list[str], phases: set[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(phases & set(self.seen.get(n, {})) for n in names):
                return
            await asyncio.sleep(0.02)
        done = sum(1 for n in names if phases & set(self.seen.get(n, {})))
        raise TimeoutError(f"only {done}/{len(names)} reached {sorted(phases)} in {timeout:.0f}s")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()


def sb_job(name: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"pool": "bench", "skill": "add", "params": {"a": i, "b": 1}},
    }


def batch_job(name: str, i: int) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "add",
                            "image": "python:3.11",
                            "command": [sys.executable, "-c", f"print({i} + 1)"],
                        }
                    ],
                }
            },
        },
    }


def batch_phase(obj: dict[str, Any]) -> str | None:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return "Succeeded" if condition["type"] == "Complete" else "Failed"
    return "Running" if obj.get("status", {}).get("active") else None


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_shiftboss(
    client: KubeClient,
    created: dict[str, float],
    prefix: str,
    count: int,
    recorder: Recorder,
    sequential: bool,
) -> list[str]:
    names = [f"{prefix}-{i}" for i in range(count)]
    if sequential:
        for i, name in enumerate(names):
            created[name] = time.monotonic()
            await client.create(JOBS.path(NAMESPACE), sb_job(name, i))
            await recorder.wait([name], TERMINAL, 60)
    else:

        async def create(i: int, name: str) -> None:
            created[name] = time.monotonic()
            await client.create(JOBS.path(NAMESPACE), sb_job(name, i))

        await asyncio.gather(*(create(i, n) for i, n in enumerate(names)))
        await recorder.wait(names, TERMINAL, 600)
    return names


def latencies(
    recorder: Recorder, created: dict[str, float], names: list[str], phase: str
) -> list[float]:
    return [
        recorder.seen[n][phase] - created[n] for n in names if phase in recorder.seen.get(n, {})
    ]


def stats_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan")}
    return {
        "p50_ms": round(statistics.median(values) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
    }


async def measure(cluster: LocalCluster, operator: OperatorProcess) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with KubeClient(KubeConfig.from_file(cluster.kubeconfig)) as client:
        sb = Recorder(client, JOBS.path(NAMESPACE), lambda o: o.get("status", {}).get("phase"))
        batch = Recorder(client, BATCH_JOBS.path(NAMESPACE), batch_phase)
        await sb.start()
        await batch.start()
        created: dict[str, float] = {}

        n = _size("SEQUENTIAL", 20)
        print(f"[bench] {n} sequential Shiftboss jobs on an idle warm pool", flush=True)
        names = await run_shiftboss(client, created, "seq", n, sb, sequential=True)
        results["idle_pool"] = {
            "jobs": n,
            "create_to_running": stats_ms(latencies(sb, created, names, "Running")),
            "create_to_done": stats_ms(latencies(sb, created, names, "Succeeded")),
            "status_writes_per_job": statistics.mean(sb.modifications.get(x, 0) for x in names),
        }

        n = _size("BURST", 200)
        print(f"[bench] a burst of {n} Shiftboss jobs", flush=True)
        rss_before = rss_mib(operator.process.pid or 0)
        start = time.monotonic()
        names = await run_shiftboss(client, created, "burst", n, sb, sequential=False)
        elapsed = time.monotonic() - start
        results["burst"] = {
            "jobs": n,
            "seconds": round(elapsed, 2),
            "jobs_per_second": round(n / elapsed, 1),
            "create_to_done": stats_ms(latencies(sb, created, names, "Succeeded")),
            "status_writes_per_job": round(
                statistics.mean(sb.modifications.get(x, 0) for x in names), 2
            ),
            "succeeded": sum(1 for x in names if "Succeeded" in sb.seen.get(x, {})),
        }
        results["operator_rss_mib"] = {
            "before_burst": round(rss_before, 1),
            "after_burst": round(rss_mib(operator.process.pid or 0), 1),
            "finished_jobs_held": len(sb.seen),
        }

        n = _size("BATCH", 20)
        print(f"[bench] a burst of {n} Shiftboss jobs (the size of the batch/v1 burst)", flush=True)
        start = time.monotonic()
        names = await run_shiftboss(client, created, "matched", n, sb, sequential=False)
        elapsed = time.monotonic() - start
        results["matched"] = {
            "jobs": n,
            "seconds": round(elapsed, 2),
            "create_to_done": stats_ms(latencies(sb, created, names, "Succeeded")),
        }
        print(
            f"[bench] a burst of {n} batch/v1 Jobs (a pod each) running the same computation",
            flush=True,
        )
        names = [f"batch-{i}" for i in range(n)]
        start = time.monotonic()
        for i, name in enumerate(names):
            created[name] = time.monotonic()
            await client.create(BATCH_JOBS.path(NAMESPACE), batch_job(name, i))
        await batch.wait(names, TERMINAL, 600)
        elapsed = time.monotonic() - start
        results["batch_v1"] = {
            "jobs": n,
            "seconds": round(elapsed, 2),
            "jobs_per_second": round(n / elapsed, 1),
            "create_to_done": stats_ms(latencies(batch, created, names, "Succeeded")),
            "status_writes_per_job": round(
                statistics.mean(batch.modifications.get(x, 0) for x in names), 2
            ),
        }
        await sb.stop()
        await batch.stop()
    return results


def report(results: dict[str, Any]) -> None:
    idle, burst = results["idle_pool"], results["burst"]
    matched, batch = results["matched"], results["batch_v1"]

    def p(stats: dict[str, Any]) -> str:
        return f"{stats['p50_ms']} / {stats['p99_ms']}"

    rows = [
        ("idle pool: create→running p50 / p99 (ms)", p(idle["create_to_running"]), "-"),
        ("idle pool: create→done p50 / p99 (ms)", p(idle["create_to_done"]), "-"),
        (
            f"burst of {matched['jobs']}: seconds until all done",
            matched["seconds"],
            batch["seconds"],
        ),
        (
            f"burst of {matched['jobs']}: create→done p50 / p99 (ms)",
            p(matched["create_to_done"]),
            p(batch["create_to_done"]),
        ),
        (f"burst of {burst['jobs']}: jobs per second", burst["jobs_per_second"], "-"),
        (f"burst of {burst['jobs']}: create→done p50 / p99 (ms)", p(burst["create_to_done"]), "-"),
        (
            "status writes per job after its creation",
            f"{idle['status_writes_per_job']} idle, {burst['status_writes_per_job']} burst",
            f"{batch['status_writes_per_job']} (+ its pod's)",
        ),
        (
            "operator RSS before / after the big burst (MiB)",
            f"{results['operator_rss_mib']['before_burst']} / {results['operator_rss_mib']['after_burst']}",
            "-",
        ),
    ]
    print(f"\n{'measure':<48} {'Shiftboss':<24} batch/v1")
    for label, ours, theirs in rows:
        print(f"{label:<48} {ours!s:<24} {theirs}")


def main() -> int:
    print("[bench] starting the local control plane and the operator", flush=True)
    with LocalCluster(crds=[ROOT / "crds"]) as cluster:
        log = Path(tempfile.mkdtemp(prefix="shiftboss-bench-")) / "operator.log"
        with OperatorProcess(
            cluster.env(), log, namespaces=[NAMESPACE], lease_seconds=15, heartbeat_seconds=5
        ) as operator:
            cluster.create_namespace(NAMESPACE)
            pool = {
                "apiVersion": "shiftboss.io/v1alpha1",
                "kind": "WorkerPool",
                "metadata": {"name": "bench"},
                "spec": {
                    "image": "bench",
                    "app": "demo_worker:worker",
                    "replicas": 3,
                    "concurrency": 4,
                    "env": [
                        {"name": "PYTHONPATH", "value": str(ROOT / "examples")},
                        {"name": "SHIFTBOSS_LOG_LEVEL", "value": "WARNING"},
                    ],
                },
            }
            cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=json.dumps(pool))
            wait_until(
                lambda: (
                    cluster.get_json("-n", NAMESPACE, "wp", "bench")
                    .get("status", {})
                    .get("readyReplicas")
                    == 3
                ),
                timeout=90,
                what="3 ready workers",
            )
            results = asyncio.run(measure(cluster, operator))
    report(results)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
