"""``shiftboss suspend|resume|rerun|timeline`` as a user runs them, as subprocesses
against the local control plane, the operator and a demo pool of one slot: a queued job
suspended does not run, resumed it does; a succeeded job re-run with ``--wait`` keeps
its earlier run in ``status.runs``; the timeline shows the run's transitions; a rerun
of a running or cancelled job is refused (exit 2) and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import apply, get, pool_manifest

from shiftboss.api.job import RUN_GENERATION_ANNOTATION
from shiftboss.testing.processes import wait_until

BIN = Path(sys.executable).parent
#: The first job waits for the pool's worker to start.
FIRST_RUN_TIMEOUT = 120
JOBS = "jobs.shiftboss.io"


def run(cluster, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [str(BIN / "shiftboss"), *argv], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def one_slot_pool(cluster, namespace, operator) -> None:
    apply(cluster, namespace, pool_manifest("demo", concurrency=1))


def job(cluster, namespace: str, name: str) -> dict:
    return get(cluster, namespace, JOBS, name)


def wait_phase(cluster, namespace: str, name: str, phase: str, timeout: float = 60) -> dict:
    return wait_until(
        lambda: (
            (obj := job(cluster, namespace, name)).get("status", {}).get("phase") == phase and obj
        ),
        timeout=timeout,
        what=f"job {name} {phase}",
    )


def test_suspend_resume_rerun_and_timeline(cluster, namespace, one_slot_pool):
    ns = ["-n", namespace]
    # The pool's one slot is taken, so the next job stays queued until suspended.
    busy = run(cluster, "submit", "demo", "sleep", "-p", "seconds=600", "--name", "busy", *ns)
    assert busy.returncode == 0, busy.stderr
    wait_phase(cluster, namespace, "busy", "Running", timeout=FIRST_RUN_TIMEOUT)
    queued = run(cluster, "submit", "demo", "add", "-p", "a=2", "-p", "b=3", "--name", "held", *ns)
    assert queued.returncode == 0, queued.stderr

    suspended = run(cluster, "suspend", "held", *ns)
    assert (suspended.returncode, suspended.stdout) == (
        0,
        "job.shiftboss.io/held suspended\n",
    ), suspended.stderr
    wait_phase(cluster, namespace, "held", "Suspended", timeout=30)

    # A rerun of a running job is refused and changes nothing.
    refused = run(cluster, "rerun", "busy", *ns)
    assert refused.returncode == 2, refused.stderr
    assert f"job busy in namespace {namespace} has not finished (phase Running)" in refused.stderr
    assert RUN_GENERATION_ANNOTATION not in job(cluster, namespace, "busy")["metadata"].get(
        "annotations", {}
    )

    # The slot frees up; the suspended job still does not run.
    assert run(cluster, "cancel", "busy", *ns).returncode == 0
    wait_phase(cluster, namespace, "busy", "Cancelled", timeout=60)
    time.sleep(3)
    held = job(cluster, namespace, "held")
    assert (held["status"]["phase"], held["status"].get("attempt", 0)) == ("Suspended", 0)

    # A cancelled job can never run again.
    cancelled = run(cluster, "rerun", "busy", "--wait", *ns)
    assert cancelled.returncode == 2, cancelled.stderr
    assert "cannot run again: create a new Job" in cancelled.stderr

    resumed = run(cluster, "resume", "held", *ns)
    assert (resumed.returncode, resumed.stdout) == (0, "job.shiftboss.io/held resumed\n")
    waited = run(cluster, "wait", "held", "--timeout", "60s", *ns)
    assert (waited.returncode, waited.stdout) == (0, "5\n"), waited.stderr

    rerun = run(cluster, "rerun", "held", "--wait", "--timeout", "60s", *ns)
    assert (rerun.returncode, rerun.stdout) == (0, "5\n"), rerun.stderr
    assert "job.shiftboss.io/held rerun requested (run 1)" in rerun.stderr
    status = job(cluster, namespace, "held")["status"]
    assert (status["phase"], status["runGeneration"]) == ("Succeeded", 1)
    assert [(r["runGeneration"], r["phase"]) for r in status["runs"]] == [(0, "Succeeded")]

    timeline = run(cluster, "timeline", "held", *ns)
    assert timeline.returncode == 0, timeline.stderr
    tables = timeline.stdout.split("\n\n")
    assert len(tables) == 2, timeline.stdout
    transitions = [line.split()[:3] for line in tables[0].splitlines()]
    assert transitions[0] == ["FROM", "TO", "REASON"]
    reasons = [reason for _, _, reason in transitions[1:]]
    assert "Claimed" in reasons and reasons[-1] == "Completed", timeline.stdout
    assert transitions[-1][1] == "Succeeded"
    runs = tables[1].splitlines()
    assert runs[0].split()[:3] == ["RUN", "PHASE", "ATTEMPTS"]
    assert [line.split()[:3] for line in runs[1:]] == [["0", "Succeeded", "1"]]

    as_json = run(cluster, "timeline", "held", "-o", "json", *ns)
    doc = json.loads(as_json.stdout)
    assert (doc["runGeneration"], len(doc["runs"])) == (1, 1)
    assert doc["timeline"][-1]["reason"] == "Completed"
