"""Queue positions, reasons and workers, from the operator's read views (``/v1/queue``,
``/v1/pools/.../workers``) and through the commands that show them (``shiftboss get``,
``shiftboss workers``), against the local control plane, the operator and real worker
pods.  Nothing is written to a Job for any of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import apply, get, job_manifest, pool_manifest

from shiftboss.testing.processes import wait_until

BIN = Path(sys.executable).parent


def shiftboss(cluster, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env(), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("SHIFTBOSS_OPERATOR_URL", None)
    return subprocess.run(
        [str(BIN / "shiftboss"), *argv], env=env, capture_output=True, text=True, timeout=120
    )


def read(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def uid_of(cluster, namespace: str, kind: str, name: str) -> str:
    return str(get(cluster, namespace, kind, name)["metadata"]["uid"])


def queue_view(operator, cluster, namespace: str, name: str, until=lambda view: True) -> dict:
    """The operator's view of the Job ``name``, once it knows it and ``until`` holds."""
    uid = uid_of(cluster, namespace, "jobs.shiftboss.io", name)

    def known() -> dict | None:
        status, body = read(f"{operator.url}/v1/queue/{namespace}/{uid}")
        return body if status == 200 and until(body) else None

    return wait_until(known, timeout=60, interval=0.3, what=f"the operator's view of {name}")


def test_positions_in_a_paused_pool(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("held", replicas=0, paused=True),
        job_manifest("low", "add", {"a": 1, "b": 1}, pool="held", priority=1),
        job_manifest("high", "add", {"a": 1, "b": 1}, pool="held", priority=9),
        job_manifest("mid", "add", {"a": 1, "b": 1}, pool="held", priority=5),
    )
    views = {
        name: queue_view(operator, cluster, namespace, name, lambda v: v["queued"] == 3)
        for name in ("low", "high", "mid")
    }
    assert {name: v["position"] for name, v in views.items()} == {"high": 1, "mid": 2, "low": 3}
    assert views["low"]["ahead"] == {"higherPriority": 2, "samePriority": 0, "lowerPriority": 0}
    for view in views.values():
        assert "paused" in view["reason"], view

    wide = shiftboss(cluster, "get", "-o", "wide", "-n", namespace, "--operator-url", operator.url)
    assert wide.returncode == 0, wide.stderr
    header, *rows = wide.stdout.splitlines()
    column = header.index("POSITION")
    positions = {row.split()[0]: row[column:].split()[0] for row in rows}
    assert positions == {"high": "1/3", "mid": "2/3", "low": "3/3"}
    assert all("is paused (spec.paused)" in row for row in rows)
    assert wide.stderr == ""

    one = shiftboss(cluster, "get", "mid", "-n", namespace, "--operator-url", operator.url)
    assert one.returncode == 0, one.stderr
    assert "POSITION" in one.stdout and " 2/3 " in one.stdout

    # Through the (absent) Service of a default install: the Job is printed all the same.
    proxied = shiftboss(cluster, "get", "mid", "-n", namespace)
    assert proxied.returncode == 0, proxied.stderr
    assert "mid" in proxied.stdout and " ? " in proxied.stdout
    assert proxied.stderr.count("\n") == 1
    assert proxied.stderr.startswith("shiftboss get: queue position unknown: ")
    assert "shiftboss-system/shiftboss" in proxied.stderr  # where it looked

    gone = shiftboss(
        cluster, "get", "-o", "wide", "-n", namespace, "--operator-url", "http://127.0.0.1:9"
    )
    assert gone.returncode == 0 and len(gone.stdout.splitlines()) == 4, gone.stderr
    assert gone.stderr.startswith(
        "shiftboss get: queue position unknown: cannot reach the operator"
    )


def test_a_pool_without_ready_workers(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("empty", replicas=0),
        job_manifest("lonely", "transcode", {}, pool="empty"),
    )
    view = queue_view(operator, cluster, namespace, "lonely", lambda v: v["waitReason"])
    assert view["waitReason"] == "NoReadyWorker"
    assert view["reason"] == "waiting for a ready worker of pool empty"
    assert (view["position"], view["offeredBy"]) == (1, 0)


def test_workers_of_a_running_pool(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("demo", concurrency=2),
        job_manifest("nap", "sleep", {"seconds": 600}),
    )

    def running() -> bool:
        return (
            get(cluster, namespace, "jobs.shiftboss.io", "nap").get("status", {}).get("phase")
            == "Running"
        )

    wait_until(running, timeout=120, interval=0.5, what="nap to run")
    listed = shiftboss(cluster, "workers", "demo", "-n", namespace, "--operator-url", operator.url)
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "POD", "SKILLS", "BUSY/SLOTS", "STATE", "LAST", "SEEN"]
    assert len(rows) == 1
    worker, pod, skills, slots, state, *_ = rows[0].split()
    assert worker == pod and worker.startswith("demo-")
    assert set(skills.split(",")) >= {"add", "sleep", "explode", "resize"}
    assert (slots, state) == ("1/2", "busy")

    as_json = shiftboss(
        cluster, "workers", "demo", "-o", "json", "-n", namespace, "--operator-url", operator.url
    )
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert (body["pool"], body["registered"], body["busy"], body["slots"]) == ("demo", 1, 1, 2)
    assert body["uid"] == uid_of(cluster, namespace, "workerpools.shiftboss.io", "demo")

    view = queue_view(operator, cluster, namespace, "nap")
    assert (view["phase"], view["position"], view["reason"]) == ("Running", None, None)

    # Ready workers, none of which offers the skill: the reason names it.
    apply(cluster, namespace, job_manifest("odd", "transcode", {}))
    view = queue_view(operator, cluster, namespace, "odd", lambda v: v["waitReason"])
    assert view["waitReason"] == "NoWorkerWithSkill"
    assert "offers skill 'transcode'" in view["reason"]
    assert (view["position"], view["offeredBy"]) == (1, 0)
    odd = shiftboss(cluster, "get", "odd", "-n", namespace, "--operator-url", operator.url)
    assert odd.returncode == 0 and "offers skill 'transcode'" in odd.stdout, odd.stderr

    missing = shiftboss(cluster, "workers", "nope", "-n", namespace, "--operator-url", operator.url)
    assert missing.returncode == 4
    assert f"workerpool nope not found in namespace {namespace}" in missing.stderr
    shiftboss(cluster, "cancel", "nap", "-n", namespace)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/queue/{ns}/not-a-uid", 400),
        ("/v1/queue/{ns}/00000000-0000-0000-0000-000000000000", 404),
        ("/v1/pools/{ns}/00000000-0000-0000-0000-000000000000/workers", 404),
        ("/v1/queue/{ns}/" + "a" * 20000, 400),
    ],
)
def test_bad_reads_are_refused(cluster, namespace, operator, path: str, status: int):
    got, body = read(operator.url + path.format(ns=namespace))
    assert got == status and body["error"]["code"], body
