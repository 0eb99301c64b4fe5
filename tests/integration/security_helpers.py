"""What the security and fuzz tests of the worker API need beyond the fake worker of
``fakeworker``: worker pods that never start their worker (so that a test speaks for them
with their own projected token), the API server's TokenReview count, the operator's
memory, a ``/healthz`` prober, and exact checks of refusals.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import apply, get, pool_manifest
from fakeworker import Api

from shiftboss.testing import ExistingCluster, LocalCluster
from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until
from worker_runtime.protocol import ErrorResponse

REGISTER = "/v1/workers/register"
#: What ``OperatorProcess`` gives the test operator.
LEASE_SECONDS = 5.0
OBJECT: dict[str, Any] = {"type": "object"}

# -- the cluster ----------------------------------------------------------------------------


def require_local(cluster: LocalCluster | ExistingCluster, why: str) -> LocalCluster:
    """The local control plane, or skip: ``why`` says what needs it."""
    if not isinstance(cluster, LocalCluster):
        pytest.skip(f"needs the local control plane: {why}")
    return cluster


@contextlib.contextmanager
def operator_for(cluster: Any, namespaces: list[str], log: Path) -> Iterator[OperatorProcess]:
    """An operator serving ``namespaces`` (the ``operator`` fixture serves one); its log
    must hold no traceback when it stops."""
    with OperatorProcess(cluster.env(), log, namespaces=namespaces) as operator:
        yield operator
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-5000:]


def create_account(cluster: Any, namespace: str, name: str) -> None:
    cluster.kubectl("-n", namespace, "create", "serviceaccount", name)


_REQUEST_TOTAL = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def tokenreviews_posted(cluster: LocalCluster) -> int:
    """TokenReviews the API server has answered since it started (all status codes):
    the sum of ``apiserver_request_total{resource="tokenreviews",verb="POST"}``."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    total = 0.0
    for line in text.splitlines():
        sample = _REQUEST_TOTAL.match(line)
        if sample is None:
            continue
        labels = sample["labels"]
        if 'resource="tokenreviews"' in labels and 'verb="POST"' in labels:
            total += float(sample["value"])
    return round(total)


# -- worker pods that never start their worker -------------------------------------------

#: The app of a dormant pool: on import (the runtime imports the app before it does
#: anything else) it says where the node put its projected token, then waits to be
#: deleted, so the pod runs with its real identity and never registers by itself.
DORMANT_APP = '''"""Written by tests/integration/security_helpers.py: a worker that never starts."""
import os
import pathlib
import time

_report = pathlib.Path(os.environ["SECURITY_TEST_REPORTS"]) / os.environ["SHIFTBOSS_WORKER_ID"]
_partial = _report.parent / (_report.name + ".partial")
_partial.write_text(os.environ["SHIFTBOSS_TOKEN_FILE"])
_partial.replace(_report)
time.sleep(600)
'''
DORMANT_MODULE = "security_dormant_worker"


@dataclass(frozen=True)
class PoolPod:
    """A pool's pod and the projected service-account token the node gave it."""

    name: str
    uid: str
    token: str


def dormant_pool(
    cluster: LocalCluster, namespace: str, pool: str, account: str, workdir: Path
) -> PoolPod:
    """A pool of one pod running under ``account`` whose worker never starts; returns the
    pod with the token read from its projected token file.  The operator must be running
    (it creates the pod)."""
    app_dir, reports = workdir / "app", workdir / "reports"
    app_dir.mkdir(parents=True)
    reports.mkdir()
    (app_dir / f"{DORMANT_MODULE}.py").write_text(DORMANT_APP)
    env = [
        {"name": "PYTHONPATH", "value": str(app_dir)},
        {"name": "SECURITY_TEST_REPORTS", "value": str(reports)},
    ]
    manifest = pool_manifest(
        pool, replicas=1, app=f"{DORMANT_MODULE}:worker", env=env, serviceAccountName=account
    )
    apply(cluster, namespace, manifest)

    def reported() -> Path | None:
        done = [p for p in reports.iterdir() if not p.name.endswith(".partial")]
        return done[0] if done else None

    report = wait_until(reported, timeout=60, what=f"the pod of pool {pool} to start")
    token_file = Path(report.read_text())
    pod = get(cluster, namespace, "pod", report.name)
    return PoolPod(report.name, pod["metadata"]["uid"], token_file.read_text().strip())


# -- requests -------------------------------------------------------------------------------


def register_when_known(api: Api, pool: str, worker_id: str, skills: dict[str, Any]) -> None:
    """Register as soon as the operator has seen the pool (it watches it in)."""

    def registered() -> bool:
        api.register(worker_id, skills, pool=pool)
        return True

    wait_until(registered, timeout=30, interval=0.3, what=f"{worker_id} to register in {pool}")


def attempt_reports(attempt_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every report a worker can send about an attempt, each well-formed."""
    base = f"/v1/attempts/{attempt_id}"
    return [
        (f"{base}/complete", {"result": {"forged": True}}),
        (f"{base}/fail", {"error_type": "Forged", "message": "sabotage", "retryable": False}),
        (f"{base}/release", {"reason": "forged hand-back"}),
        (f"{base}/progress", {"percent": 99, "message": "forged"}),
    ]


def worker_requests(worker_id: str, attempt_id: str) -> list[tuple[str, dict[str, Any]]]:
    """A worker's own requests (heartbeat listing the attempt, an immediate claim)."""
    base = f"/v1/workers/{worker_id}"
    return [
        (f"{base}/heartbeat", {"attempt_ids": [attempt_id], "draining": False}),
        (f"{base}/claim", {"max_attempts": 1, "wait_seconds": 0}),
    ]


def refusal(response: httpx.Response, codes: dict[int, str]) -> str:
    """The response is one of ``codes`` (status -> error code) with a JSON ErrorResponse
    that has a message (and a ``Retry-After`` for a 429); returns the error code."""
    assert response.status_code in codes, (
        f"expected one of {codes}, got {response.status_code}: {response.text[:300]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.status_code,
        response.headers,
        response.text[:200],
    )
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == codes[response.status_code], (response.status_code, error)
    assert error.message.strip(), error
    if response.status_code == 429:
        assert int(response.headers["Retry-After"]) >= 1, response.headers
    return error.code


# -- measuring -------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Resident memory of a process (``VmRSS`` in ``/proc/<pid>/status``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class Probe:
    started: float  # monotonic
    seconds: float  # until the answer (or the timeout)
    status: int  # 0 when no answer came


@dataclass
class HealthProbe:
    """``GET /healthz`` every ``interval`` seconds in a thread while in the ``with`` block,
    as a liveness probe would (one at a time, ``timeout`` each)."""

    url: str
    interval: float = 0.05
    timeout: float = 2.0
    max_probes: int = 20_000
    probes: list[Probe] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="healthz-probe", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)

    def between(self, start: float, end: float) -> list[Probe]:
        return [p for p in self.probes if start <= p.started <= end]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=self.timeout, trust_env=False) as http:
            for _ in range(self.max_probes):
                started = time.monotonic()
                try:
                    status = http.get("/healthz").status_code
                except httpx.HTTPError:
                    status = 0
                elapsed = time.monotonic() - started
                self.probes.append(Probe(started, elapsed, status))
                if self._stop.wait(max(0.0, self.interval - elapsed)):
                    return
