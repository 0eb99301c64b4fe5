from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


#: The longest test files, started first: with two workers taking whole files in the order
#: collected, a long file started last would leave one worker idle while it runs.
LONGEST_FIRST = (
    "test_operator_outage.py",
    "test_faults.py",
    "test_security.py",
    "test_fuzz_worker_api.py",
    "test_lifecycle.py",
)


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable otherwise


@pytest.fixture
def operator(cluster, namespace, tmp_path) -> Iterator[OperatorProcess]:
    with OperatorProcess(cluster.env(), tmp_path / "operator.log", namespaces=[namespace]) as op:
        yield op
    log = (tmp_path / "operator.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]


def pool_manifest(name: str, replicas: int = 1, concurrency: int = 1, **spec) -> dict:
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": {
            "image": "shiftboss/demo:dev",
            "app": "demo_worker:worker",
            "replicas": replicas,
            "concurrency": concurrency,
            "drainTimeoutSeconds": 10,
            "env": [{"name": "PYTHONPATH", "value": str(EXAMPLES)}],
            **spec,
        },
    }


def job_manifest(name: str, skill: str, params: dict, pool: str = "demo", **spec) -> dict:
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"pool": pool, "skill": skill, "params": params, **spec},
    }


def apply(cluster, namespace: str, *objects: dict) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc))


def get(cluster, namespace: str, kind: str, name: str | None = None) -> dict:
    return cluster.get_json("-n", namespace, kind, *([name] if name else []))


def wait_jobs_done(cluster, namespace: str, count: int, timeout: float = 120) -> list[dict]:
    def done():
        items = get(cluster, namespace, "jobs.shiftboss.io")["items"]
        finished = [
            j
            for j in items
            if j.get("status", {}).get("phase") in ("Succeeded", "Failed", "Cancelled")
        ]
        return items if len(finished) >= count else None

    return wait_until(done, timeout=timeout, interval=0.5, what=f"{count} jobs to finish")


def wait_ready_workers(cluster, namespace: str, pool: str, count: int, timeout: float = 90) -> None:
    def ready():
        status = get(cluster, namespace, "workerpools.shiftboss.io", pool).get("status", {})
        return status.get("readyReplicas", 0) >= count

    wait_until(ready, timeout=timeout, interval=0.5, what=f"{count} ready workers in pool {pool}")


# -- fixtures of the fault tests (see traced.py) ---------------------------------------------


@pytest.fixture
def local_cluster_only(cluster) -> None:
    if not hasattr(cluster, "restart_apiserver"):
        pytest.skip("needs the local control plane (it breaks its API server and processes)")


@pytest.fixture
def trace(tmp_path) -> Path:
    return tmp_path / "trace.jsonl"


@pytest.fixture
def operator_log(tmp_path) -> Iterator[Path]:
    log = tmp_path / "operator.log"
    yield log
    if log.exists():
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-5000:]
