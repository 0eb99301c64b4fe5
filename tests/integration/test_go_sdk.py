"""The Go worker SDK (sdk/go) against a real operator: its smoke example runs jobs, and
keeps the protocol's guarantees under real faults.

The example is built with the local Go toolchain (standard library only, nothing to
download) and run as an external worker with a `kubectl create token` token. Its
"sleep" skill appends a trace line per start, end and stop (`-trace`), so the fault
tests count how often it really ran, whatever the Job's status says.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import apply, get, job_manifest, pool_manifest, wait_jobs_done
from fakeworker import JOBS, create_token, job_status

from shiftboss.testing.faults import FaultProxy
from shiftboss.testing.operator import OperatorProcess
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
ONCE = {"maxAttempts": 1}


def go_env() -> dict[str, str]:
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    """The smoke example, built once for the module."""
    if shutil.which("go") is None:
        pytest.skip("the Go toolchain (go) is not on PATH: cannot build sdk/go/examples/smoke")
    binary = tmp_path_factory.mktemp("go") / "smoke"
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


@pytest.fixture
def token_file(cluster, namespace, tmp_path) -> Path:
    path = tmp_path / "token"
    path.write_text(create_token(cluster, namespace))
    return path


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


@contextmanager
def go_worker(
    binary: Path, url: str, token_file: Path, log: Path, *args: str, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """The smoke example as an external worker of pool gopool; stopped (by its pid) at exit."""
    variables = {
        **os.environ,
        "SHIFTBOSS_OPERATOR_URL": url,
        "SHIFTBOSS_POOL": "gopool",
        "SHIFTBOSS_WORKER_ID": WORKER_ID,
        "SHIFTBOSS_TOKEN_FILE": str(token_file),
        "SHIFTBOSS_CLAIM_WAIT_SECONDS": "5",
        **env,
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(binary), *args], env=variables, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def read_trace(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def events(path: Path, event: str) -> Counter[str]:
    """How many times each job's sleep skill logged ``event``."""
    return Counter(line["job"] for line in read_trace(path) if line["event"] == event)


def wait_phase(cluster, namespace: str, name: str, phases: set[str], timeout: float) -> dict:
    def reached() -> dict | None:
        status = job_status(cluster, namespace, name)
        return status if status.get("phase") in phases else None

    return wait_until(reached, timeout=timeout, interval=0.5, what=f"{name} in {sorted(phases)}")


def sleep_job(name: str, seconds: float) -> dict:
    return job_manifest(name, "sleep", {"seconds": seconds}, pool="gopool", retry=ONCE)


def test_go_smoke_worker_runs_jobs(cluster, namespace, operator, smoke, token_file, tmp_path):
    apply(cluster, namespace, pool_manifest("gopool", replicas=0))
    wait_pool_known(operator.url, token_file.read_text())
    log_path = tmp_path / "go-worker.log"
    with go_worker(
        smoke, operator.url, token_file, log_path, "-once", "-jobs", str(len(GOOD))
    ) as proc:
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


def assert_ran_once(status: dict) -> None:
    """Succeeded on its first attempt, with one attempt in its history."""
    assert (status["phase"], status["attempt"], status["countedAttempts"]) == (
        "Succeeded",
        1,
        1,
    ), status
    assert [a["outcome"] for a in status["attempts"]] == ["Succeeded"], status


def test_go_worker_delivers_its_outcome_after_a_long_operator_outage(
    cluster, namespace, smoke, token_file, tmp_path
):
    """The operator SIGKILLed while the job runs and kept away for longer than the lease,
    the restore grace and the old SDK's 30 s report budget: the worker keeps its attempt
    (connection refused: the operator is absent, so its lease view does not lapse) and
    delivers the result when the operator is back. One attempt, one run."""
    first = OperatorProcess(cluster.env(), tmp_path / "operator.log", namespaces=[namespace])
    first.start()
    trace = tmp_path / "trace.jsonl"
    log = tmp_path / "go-worker.log"
    try:
        apply(cluster, namespace, pool_manifest("gopool", replicas=0))
        wait_pool_known(first.url, token_file.read_text())
        with go_worker(smoke, first.url, token_file, log, "-trace", str(trace)):
            apply(cluster, namespace, sleep_job("long", 4))
            wait_until(lambda: events(trace, "start")["long"] == 1, timeout=60, what="the run")
            first.kill()
            wait_until(lambda: events(trace, "end")["long"] == 1, timeout=30, what="its end")
            time.sleep(32)  # the outage itself: the finished result waits 32 s more
            second = OperatorProcess(
                cluster.env(), tmp_path / "operator-2.log", namespaces=[namespace], port=first.port
            )
            with second:
                status = wait_phase(cluster, namespace, "long", {"Succeeded", "Failed"}, 90)
    finally:
        first.kill()
    assert_ran_once(status)
    assert events(trace, "start") == Counter({"long": 1}), read_trace(trace)
    assert "Traceback" not in (tmp_path / "operator-2.log").read_text()


def test_a_claim_answer_dropped_on_the_wire_costs_the_go_worker_no_attempt(
    cluster, namespace, operator, smoke, token_file, tmp_path
):
    trace = tmp_path / "trace.jsonl"
    apply(cluster, namespace, pool_manifest("gopool", replicas=0))
    wait_pool_known(operator.url, token_file.read_text())
    with (
        FaultProxy(operator.url) as wire,
        go_worker(smoke, wire.url, token_file, tmp_path / "go.log", "-trace", str(trace)),
    ):
        with wire.drop_reply(method="POST", path=r"/claim$") as dropped:
            apply(cluster, namespace, sleep_job("once", 1))
            wait_until(
                lambda: job_status(cluster, namespace, "once").get("phase") == "Running",
                timeout=30,
                what="the claim to be written (its answer dropped)",
            )
            dropped.wait_hits(2, timeout=10)  # the retry with the same request id too
        status = wait_phase(cluster, namespace, "once", {"Succeeded", "Failed"}, 60)
    assert_ran_once(status)
    assert events(trace, "start") == Counter({"once": 1}), read_trace(trace)


def test_a_cancelled_go_job_is_asked_to_stop_first(
    cluster, namespace, operator, smoke, token_file, tmp_path
):
    trace = tmp_path / "trace.jsonl"
    apply(cluster, namespace, pool_manifest("gopool", replicas=0))
    wait_pool_known(operator.url, token_file.read_text())
    with go_worker(smoke, operator.url, token_file, tmp_path / "go.log", "-trace", str(trace)):
        apply(cluster, namespace, sleep_job("doomed", 600))
        wait_until(lambda: events(trace, "start")["doomed"] == 1, timeout=60, what="the run")
        cluster.kubectl(
            "-n", namespace, "patch", JOBS, "doomed", "--type=merge", "-p",
            json.dumps({"spec": {"cancel": True}}),
        )  # fmt: skip
        status = wait_phase(cluster, namespace, "doomed", {"Cancelled", "Failed"}, 60)
    assert status["phase"] == "Cancelled", status
    stopped = [line for line in read_trace(trace) if line["event"] == "stopped"]
    assert [(s["job"], s["reason"]) for s in stopped] == [("doomed", "Cancelled")], stopped
    assert events(trace, "end") == Counter(), read_trace(trace)


def test_a_draining_go_worker_releases_what_still_runs(
    cluster, namespace, operator, smoke, token_file, tmp_path
):
    """SIGTERM with a 1 s drain timeout while a job runs: the handler is asked to stop and
    the attempt released (Disrupted, not counted), so with maxAttempts 1 the job still
    succeeds on the next worker."""
    trace = tmp_path / "trace.jsonl"
    apply(cluster, namespace, pool_manifest("gopool", replicas=0))
    wait_pool_known(operator.url, token_file.read_text())
    drain = {"SHIFTBOSS_DRAIN_TIMEOUT_SECONDS": "1"}
    with go_worker(
        smoke, operator.url, token_file, tmp_path / "a.log", "-trace", str(trace), **drain
    ) as a:
        apply(cluster, namespace, sleep_job("moved", 6))
        wait_until(lambda: events(trace, "start")["moved"] == 1, timeout=60, what="the run")
        a.send_signal(signal.SIGTERM)
        assert a.wait(timeout=30) == 0, (tmp_path / "a.log").read_text()
    assert [(s["event"], s["reason"]) for s in read_trace(trace)] == [
        ("start", ""),
        ("stopped", "Released"),
    ]
    with go_worker(
        smoke, operator.url, token_file, tmp_path / "b.log", "-trace", str(trace),
        SHIFTBOSS_WORKER_ID="go-worker-2",
    ):  # fmt: skip
        status = wait_phase(cluster, namespace, "moved", {"Succeeded", "Failed"}, 60)
    assert status["phase"] == "Succeeded", status
    assert status["countedAttempts"] == 1, status
    assert [a["outcome"] for a in status["attempts"]] == ["Disrupted", "Succeeded"], status
    assert [a["worker"] for a in status["attempts"]] == [WORKER_ID, "go-worker-2"], status
