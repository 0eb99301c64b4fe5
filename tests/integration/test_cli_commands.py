"""The job commands (``shiftboss submit|get|wait|cancel|logs``) run as a user runs them,
as subprocesses against the local control plane, the operator and the demo pool; and as
``kubectl shiftboss`` through kubectl's plugin mechanism. Each exit code is checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import apply, pool_manifest

BIN = Path(sys.executable).parent
#: The first job waits for the pool's worker to start.
FIRST_RUN_TIMEOUT = "120s"


@pytest.fixture
def demo_pool(cluster, namespace, operator) -> None:
    apply(cluster, namespace, pool_manifest("demo", concurrency=4))


def run(cluster, *argv: str, program: str = "shiftboss") -> subprocess.CompletedProcess[str]:
    command = (
        [cluster.kubectl_binary(), "shiftboss", *argv]
        if program == "kubectl"
        else [str(BIN / "shiftboss"), *argv]
    )
    env = {**cluster.env(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)


def test_submit_wait_get_cancel_and_logs(cluster, namespace, demo_pool):
    ns = ["-n", namespace]
    added = run(
        cluster, "submit", "demo", "add", "--param", "a=2", "--param", "b=3", "--name", "sum",
        "--wait", "--timeout", FIRST_RUN_TIMEOUT, *ns,
    )  # fmt: skip
    assert (added.returncode, added.stdout) == (0, "5\n"), added.stderr
    assert "job.shiftboss.io/sum created" in added.stderr
    assert "sum Succeeded" in added.stderr  # the progress display's last word

    exploded = run(cluster, "submit", "demo", "explode", "--wait", "--timeout", "60s", *ns)
    assert exploded.returncode == 1, exploded.stderr
    assert "failed after 1 attempt(s): FatalError: boom" in exploded.stderr
    assert exploded.stdout == ""

    slow = run(
        cluster, "submit", "demo", "sleep", "-p", "seconds=600", "--name", "sleeper", "--wait",
        "--timeout", "1s", *ns,
    )  # fmt: skip
    assert slow.returncode == 3, slow.stderr
    assert "job sleeper in namespace" in slow.stderr
    assert (
        f"it keeps running: wait for it again, or cancel it (shiftboss wait sleeper -n {namespace}"
        in slow.stderr
    )

    listed = run(cluster, "get", "-o", "json", *ns)
    assert listed.returncode == 0, listed.stderr
    items = {job["metadata"]["name"]: job for job in json.loads(listed.stdout)["items"]}
    assert items["sum"]["status"]["result"] == 5
    assert items["sleeper"]["spec"]["params"] == {"seconds": 600}
    table = run(cluster, "get", *ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "POOL", "SKILL", "PHASE", "ATTEMPTS", "AGE", "MESSAGE"]
    assert next(row for row in table if row.startswith("sum ")).split()[1:5] == [
        "demo", "add", "Succeeded", "1",
    ]  # fmt: skip

    cancelled = run(cluster, "cancel", "sleeper", *ns)
    assert (cancelled.returncode, cancelled.stdout) == (
        0,
        "job.shiftboss.io/sleeper cancel requested\n",
    )
    waited = run(cluster, "wait", "sleeper", "--timeout", "60s", *ns)
    assert waited.returncode == 1, waited.stderr
    assert "job sleeper in namespace" in waited.stderr and "was cancelled" in waited.stderr

    logs = run(cluster, "logs", "sum", *ns)
    assert logs.returncode == 0, logs.stderr
    assert "attempt 1 of sum: running skill add" in logs.stdout
    assert "sleeper" not in logs.stdout and "explode" not in logs.stdout
    assert all("attempt=" in line for line in logs.stdout.splitlines())

    missing = run(cluster, "wait", "nope", *ns)
    assert missing.returncode == 4
    assert f"job nope not found in namespace {namespace}" in missing.stderr
    assert f"list the namespace's jobs with: shiftboss get -n {namespace}" in missing.stderr


def test_kubectl_shiftboss_is_the_same_command(cluster, namespace):
    listed = run(cluster, "get", "-n", namespace, program="kubectl")
    assert listed.returncode == 0, listed.stderr
    assert f"No jobs found in namespace {namespace}." in listed.stderr
    missing = run(cluster, "get", "nope", "-n", namespace, program="kubectl")
    assert missing.returncode == 4
    assert missing.stderr.startswith(
        f"kubectl shiftboss get: job nope not found in namespace {namespace}"
    )
    assert "with: kubectl shiftboss get -n" in missing.stderr
    usage = run(cluster, "get", "-o", "table", program="kubectl")
    assert usage.returncode == 2
    assert usage.stderr.startswith("usage: kubectl shiftboss get")
