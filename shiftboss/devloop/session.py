"""The processes of one ``shiftboss dev``: a ``LocalCluster`` with the CRDs, the
project directory loaded as the pool's image, the operator, and the WorkerPool. Every
process is started and stopped by its handle (``ManagedProcess``), never by name."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shiftboss.api.crdgen import render_crds
from shiftboss.api.workerpool import WorkerPool, WorkerPoolSpec
from shiftboss.testing.binaries import BuildReport
from shiftboss.testing.cluster import LocalCluster
from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import ManagedProcess, wait_until

#: The image of the dev pool: the process node runs its containers in the project
#: directory, loaded as this image (as ``kind load docker-image`` would load a build).
DEV_IMAGE = "shiftboss-dev:local"
#: A restarted or stopped worker hands its jobs back quickly in a dev loop.
DRAIN_SECONDS = 5
READY_TIMEOUT = 120.0


class DevStartError(RuntimeError):
    """The pool did not come up; the message carries the workers' last log lines."""


@dataclass(frozen=True)
class DevOptions:
    app: str
    project: Path
    pool: str = "dev"
    replicas: int = 1
    namespace: str = "default"
    port: int | None = None


def pool_manifest(options: DevOptions) -> dict[str, Any]:
    """The WorkerPool running the author's app from the project directory."""
    pool = WorkerPool(
        metadata={"name": options.pool, "namespace": options.namespace},
        spec=WorkerPoolSpec(
            image=DEV_IMAGE,
            app=options.app,
            replicas=options.replicas,
            drain_timeout_seconds=DRAIN_SECONDS,
        ),
    )
    manifest: dict[str, Any] = pool.model_dump(
        mode="json", by_alias=True, exclude_unset=True, exclude={"status"}
    )
    return {"apiVersion": pool.api_version, "kind": pool.kind, **manifest}


class DevSession:
    """``start()`` brings everything up (or stops what it started and raises);
    ``stop()`` ends every process, the operator first."""

    def __init__(self, options: DevOptions, bin_dir: Path) -> None:
        self.options = options
        self.workdir = Path(tempfile.mkdtemp(prefix="shiftboss-dev-"))
        crds = self.workdir / "crds.yaml"
        crds.write_text(yaml.safe_dump_all(list(render_crds().values()), sort_keys=False))
        self.cluster = LocalCluster(
            bin_dir=bin_dir,
            workdir=self.workdir / "cluster",
            crds=[crds],
            images={DEV_IMAGE: options.project},
        )
        self.operator: OperatorProcess | None = None

    @property
    def processes(self) -> list[ManagedProcess]:
        """Every process this session started (the process node's pods are its children)."""
        extra = [self.operator.process] if self.operator else []
        return [*self.cluster.processes, *extra]

    def start(self, report: BuildReport) -> None:
        o = self.options
        report.step("starting the local control plane (etcd, kube-apiserver, controllers)")
        self.cluster.start()
        if not self._namespace_exists(o.namespace):
            self.cluster.create_namespace(o.namespace)
        report.step(f"starting the operator (namespace {o.namespace})")
        self.operator = OperatorProcess(
            self.cluster.env(), self.cluster.logs / "operator.log", namespaces=[o.namespace],
            port=o.port,
        ).start()  # fmt: skip
        report.step(f"starting pool {o.pool} ({o.replicas} x {o.app})")
        self.cluster.kubectl(
            "apply", "-f", "-", input=yaml.safe_dump(pool_manifest(o), sort_keys=False)
        )
        try:
            wait_until(
                self._ready, timeout=READY_TIMEOUT, interval=0.5, what=f"pool {o.pool} ready"
            )
        except TimeoutError:
            raise DevStartError(
                f"the workers of pool {o.pool} were not ready within {READY_TIMEOUT:.0f}s; "
                f"their last log lines:\n{self._worker_logs()}"
            ) from None

    def _namespace_exists(self, name: str) -> bool:
        return self.cluster.kubectl("get", "namespace", name, check=False).returncode == 0

    def _ready(self) -> bool:
        o = self.options
        pool = self.cluster.get_json("-n", o.namespace, "workerpools.shiftboss.io", o.pool)
        return int(pool.get("status", {}).get("readyReplicas", 0)) >= o.replicas

    def _worker_logs(self) -> str:
        o = self.options
        out = self.cluster.kubectl(
            "-n", o.namespace, "logs", "-l", f"shiftboss.io/pool={o.pool}", "--tail=20",
            "--prefix", check=False,
        )  # fmt: skip
        text = (out.stdout + out.stderr).strip()
        return text or f"(no log lines; see the process node's log in {self.cluster.logs})"

    def restart_workers(self) -> str | None:
        """Delete the pool's pods: the pool makes new ones, which import the app afresh
        (a running attempt has ``DRAIN_SECONDS`` to finish, else it is handed back and runs
        again, not counted). Returns kubectl's error, if any."""
        o = self.options
        out = self.cluster.kubectl(
            "-n", o.namespace, "delete", "pods", "-l", f"shiftboss.io/pool={o.pool}",
            "--wait=false", check=False,
        )  # fmt: skip
        return None if out.returncode == 0 else (out.stderr or out.stdout).strip()

    def stop(self) -> None:
        if self.operator is not None:
            self.operator.stop()
        self.cluster.stop()
        if not self.cluster.failed:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def keep_logs(self) -> None:
        """Keep the work directory (logs) after ``stop()``: something went wrong."""
        self.cluster.failed = True
