"""The bench's world: a local control plane with the process node, the operator serving
one namespace, and a warm pool of workers there; stopped (every process by its own pid)
when the ``with`` block ends, also on Ctrl-C or a failure."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from shiftboss.testing import LocalCluster
from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
#: The namespace the operator serves; the ceiling and the batch/v1 peer run elsewhere,
#: so no operator sees their objects.
NAMESPACE = "bench"
CEILING_NAMESPACE = "bench-ceiling"
PEER_NAMESPACE = "bench-peer"
POOL = "bench"
LEASE_SECONDS = 15.0
HEARTBEAT_SECONDS = 5.0


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` (``VmRSS`` in ``/proc/<pid>/status``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS line for pid {pid}: is it a zombie?")


def pool_manifest(name: str, replicas: int, concurrency: int) -> dict[str, Any]:
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": {
            "image": "bench",
            "app": "demo_worker:worker",
            "replicas": replicas,
            "concurrency": concurrency,
            "env": [
                {"name": "PYTHONPATH", "value": str(ROOT / "examples")},
                {"name": "SHIFTBOSS_LOG_LEVEL", "value": "WARNING"},
            ],
        },
    }


class BenchCluster:
    """``with BenchCluster(logs) as world:`` the cluster and the operator are up."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        (logs / "operator.log").unlink(missing_ok=True)  # one run's log, not an append
        self.cluster = LocalCluster(crds=[ROOT / "crds"])  # its workdir is kept on failure
        self.operator: OperatorProcess | None = None
        self.operator_starts: list[float] = []

    def __enter__(self) -> BenchCluster:
        self.cluster.start()
        try:
            for namespace in (NAMESPACE, CEILING_NAMESPACE, PEER_NAMESPACE):
                self.cluster.create_namespace(namespace)
            self.operator = OperatorProcess(
                self.cluster.env(),
                self.logs / "operator.log",
                namespaces=[NAMESPACE],
                lease_seconds=LEASE_SECONDS,
                heartbeat_seconds=HEARTBEAT_SECONDS,
            )
            self.start_operator()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """The operator first (so it does not react to the cluster going away), then the
        control plane and every pod process of the node."""
        if self.operator is not None:
            self.operator.stop()
        self.cluster.stop()

    @property
    def kubeconfig(self) -> Path:
        return self.cluster.kubeconfig

    @property
    def operator_pid(self) -> int:
        assert self.operator is not None and self.operator.process.pid is not None
        return self.operator.process.pid

    def operator_rss(self) -> float:
        return rss_mib(self.operator_pid)

    def start_operator(self, *, wait: bool = True) -> float:
        """Start the operator process; returns the monotonic time it was started."""
        assert self.operator is not None
        started = time.monotonic()
        self.operator.start(wait=wait)
        self.operator_starts.append(started)
        return started

    def kill_operator(self) -> None:
        assert self.operator is not None
        self.operator.kill()

    def wait_operator_ready(self, timeout: float = 120) -> None:
        assert self.operator is not None
        self.operator.wait_ready(timeout)

    def apply(self, namespace: str, manifest: dict[str, Any]) -> None:
        self.cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(manifest))

    def warm_pool(self, name: str, replicas: int, concurrency: int, timeout: float = 120) -> None:
        """A pool of ``replicas`` workers, each taking ``concurrency`` jobs, all Ready."""
        self.apply(NAMESPACE, pool_manifest(name, replicas, concurrency))

        def ready() -> bool:
            pool = self.cluster.get_json("-n", NAMESPACE, "wp", name)
            return bool(pool.get("status", {}).get("readyReplicas") == replicas)

        wait_until(ready, timeout=timeout, what=f"{replicas} ready workers in pool {name}")
