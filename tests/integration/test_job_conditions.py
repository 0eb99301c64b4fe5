"""A Job's conditions on the real control plane: ``kubectl wait`` works as for batch/v1
Jobs, kstatus's Reconciling/Stalled follow the phase, observedGeneration follows edits,
and a retry's message names the time of the next attempt."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from conftest import apply, get, job_manifest, pool_manifest

from shiftboss.testing.processes import wait_until


def job(cluster, namespace: str, name: str) -> dict:
    return get(cluster, namespace, "jobs.shiftboss.io", name)


def conditions(obj: dict) -> dict[str, dict]:
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


def kubectl_wait(cluster, namespace: str, name: str, condition: str) -> None:
    result = cluster.kubectl(
        "-n",
        namespace,
        "wait",
        f"--for=condition={condition}",
        f"sbj/{name}",
        "--timeout=60s",
        check=False,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr


def assert_generation_observed(obj: dict) -> None:
    generation = obj["metadata"]["generation"]
    assert obj["status"]["observedGeneration"] == generation
    assert {c["observedGeneration"] for c in obj["status"]["conditions"]} == {generation}


def test_kubectl_wait_and_kstatus_conditions(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("demo", replicas=1, concurrency=4),
        job_manifest("ok", "add", {"a": 1, "b": 2}),
        job_manifest("boom", "explode", {"message": "disk on fire", "fatal": True}),
        job_manifest(
            "flaky",
            "explode",
            {"message": "try again", "fatal": False},
            retry={
                "maxAttempts": 2,
                "backoff": {"initialDelaySeconds": 5, "maxDelaySeconds": 5, "jitter": 0},
            },
        ),
        job_manifest("nap", "sleep", {"seconds": 300}),
    )

    kubectl_wait(cluster, namespace, "ok", "Complete")
    ok = job(cluster, namespace, "ok")
    assert ok["status"]["phase"] == "Succeeded"
    assert {t: (c["status"], c["reason"]) for t, c in conditions(ok).items()} == {
        "Ready": ("True", "Succeeded"),
        "Complete": ("True", "Succeeded"),
    }
    assert_generation_observed(ok)

    kubectl_wait(cluster, namespace, "boom", "Failed")
    boom = job(cluster, namespace, "boom")
    assert {t: (c["status"], c["reason"]) for t, c in conditions(boom).items()} == {
        "Ready": ("False", "NotRetryable"),
        "Stalled": ("True", "NotRetryable"),
        "Failed": ("True", "NotRetryable"),
    }
    assert conditions(boom)["Failed"]["message"] == boom["status"]["message"]

    # A retry says when it comes, as an absolute time (it stays true while unwritten).
    def retrying():
        status = job(cluster, namespace, "flaky").get("status", {})
        return status if status.get("phase") == "Retrying" else None

    flaky = wait_until(retrying, timeout=60, interval=0.2, what="job flaky retrying")
    next_at = datetime.fromisoformat(flaky["nextAttemptAt"].replace("Z", "+00:00"))
    said = re.fullmatch(
        r"attempt 1 failed \(RuntimeError\); next attempt at (\S+)", flaky["message"]
    )
    assert said, flaky["message"]
    # nextAttemptAt rounded up to the second (dated only when it falls on another day).
    rounded_up = next_at + timedelta(microseconds=(1_000_000 - next_at.microsecond) % 1_000_000)
    assert f"{rounded_up:%Y-%m-%dT%H:%M:%SZ}".endswith(said.group(1)), said.group(1)
    reconciling = {c["type"]: c for c in flaky["conditions"]}["Reconciling"]
    assert (reconciling["status"], reconciling["reason"]) == ("True", "Retrying")
    kubectl_wait(cluster, namespace, "flaky", "Failed")
    assert conditions(job(cluster, namespace, "flaky"))["Stalled"]["reason"] == "AttemptsExhausted"

    # A running job is Reconciling; cancelling it (a spec edit) is observed and Stalled.
    kubectl_wait(cluster, namespace, "nap", "Reconciling")
    nap = job(cluster, namespace, "nap")
    assert nap["status"]["phase"] == "Running"
    assert conditions(nap)["Ready"]["status"] == "False"
    assert_generation_observed(nap)
    cluster.kubectl(
        "-n", namespace, "patch", "sbj/nap", "--type=merge", "-p", '{"spec":{"cancel":true}}'
    )
    kubectl_wait(cluster, namespace, "nap", "Stalled")
    nap = job(cluster, namespace, "nap")
    assert nap["status"]["phase"] == "Cancelled"
    assert nap["metadata"]["generation"] == 2
    assert_generation_observed(nap)
    assert set(conditions(nap)) == {"Ready", "Stalled"}  # Reconciling is gone

    explained = " ".join(cluster.kubectl("explain", "sbj.status.conditions").stdout.split())
    assert "kubectl wait --for=condition=Complete" in explained
    assert "lastTransitionTime" in explained
