"""The Go worker SDK (sdk/go) against a real operator: its smoke example runs jobs.

The example is built with the local Go toolchain (standard library only, nothing to
download) and run as an external worker with a `kubectl create token` token.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import apply, get, job_manifest, pool_manifest, wait_jobs_done

from shiftboss.testing.processes import wait_until

SDK = Path(__file__).resolve().parents[2] / "sdk" / "go"
WORKER_ID = "go-worker-1"
ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}
GOOD = {f"add-{i}": (i, 10 * i) for i in range(1, 6)}


def go_env() -> dict[str, str]:
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}


def build_smoke(out: Path) -> Path:
    binary = out / "smoke"
    result = subprocess.run(
        ["go", "build", "-o", str(binary), "./examples/smoke"],
        cwd=SDK,
        env=go_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"go build failed:\n{result.stdout}\n{result.stderr}"
    return binary


def wait_pool_known(url: str, token: str) -> None:
    """Register once by hand until the operator has seen the pool (it watches it in)."""
    body = {
        "pool": "gopool",
        "worker_id": WORKER_ID,
        "skills": [{"name": "add", "input_schema": ADD_SCHEMA}],
        "capacity": 1,
    }
    with httpx.Client(base_url=url, timeout=10, trust_env=False) as http:

        def registered() -> bool:
            headers = {"Authorization": f"Bearer {token}"}
            response = http.post("/v1/workers/register", json=body, headers=headers)
            return response.status_code == 200

        wait_until(registered, timeout=30, interval=0.3, what="the operator to know gopool")


def test_go_smoke_worker_runs_jobs(cluster, namespace, operator, tmp_path):
    if shutil.which("go") is None:
        pytest.skip("the Go toolchain (go) is not on PATH: cannot build sdk/go/examples/smoke")
    binary = build_smoke(tmp_path)

    apply(cluster, namespace, pool_manifest("gopool", replicas=0))
    token = cluster.kubectl(
        "-n", namespace, "create", "token", "default", "--audience", "shiftboss"
    ).stdout.strip()
    token_file = tmp_path / "token"
    token_file.write_text(token)
    wait_pool_known(operator.url, token)

    env = {
        **os.environ,
        "SHIFTBOSS_OPERATOR_URL": operator.url,
        "SHIFTBOSS_POOL": "gopool",
        "SHIFTBOSS_WORKER_ID": WORKER_ID,
        "SHIFTBOSS_TOKEN_FILE": str(token_file),
        "SHIFTBOSS_CLAIM_WAIT_SECONDS": "5",
    }
    log_path = tmp_path / "go-worker.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(binary), "-once", "-jobs", str(len(GOOD))],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # The bad job first: the worker exits after its 5 good jobs, and the bad one is
        # only refused when a claim reaches it (jobs of one second go in arrival order).
        jobs = [job_manifest("add-bad", "add", {"a": "x", "b": 1}, pool="gopool")]
        jobs += [
            job_manifest(name, "add", {"a": a, "b": b}, pool="gopool")
            for name, (a, b) in GOOD.items()
        ]
        apply(cluster, namespace, *jobs)
        items = wait_jobs_done(cluster, namespace, len(jobs), timeout=120)
        statuses = {j["metadata"]["name"]: j.get("status", {}) for j in items}

        bad = statuses["add-bad"]
        assert bad["phase"] == "Failed", bad
        assert bad["error"]["type"] == "InvalidParams", bad
        assert bad["error"]["retryable"] is False, bad
        assert bad.get("attempts", []) == [], bad  # it never ran

        for name, (a, b) in GOOD.items():
            status = statuses[name]
            assert status["phase"] == "Succeeded", (name, status, log_path.read_text())
            assert status["result"] == a + b, (name, status)
            assert status["attempts"][0]["worker"] == WORKER_ID, (name, status)

        # -once: the worker drains and exits by itself after its 5 jobs.
        assert proc.wait(timeout=60) == 0, log_path.read_text()
        pool = get(cluster, namespace, "workerpools.shiftboss.io", "gopool")
        assert pool["spec"]["replicas"] == 0
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
