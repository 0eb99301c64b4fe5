"""Holding, re-running and de-duplicating Jobs on the real control plane: spec.suspend,
spec.runGeneration, spec.idempotencyKey across an operator restart, and the
Schedulable condition of a job that nothing can run."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import apply, get, job_manifest, pool_manifest, wait_ready_workers

from shiftboss.testing.processes import wait_until


def job(cluster, namespace: str, name: str) -> dict:
    return get(cluster, namespace, "jobs.shiftboss.io", name)


def status(cluster, namespace: str, name: str) -> dict:
    return job(cluster, namespace, name).get("status", {})


def conditions(obj_status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in obj_status.get("conditions", [])}


def patch_spec(cluster, namespace: str, name: str, **spec) -> None:
    cluster.kubectl(
        "-n", namespace, "patch", "sbj", name, "--type=merge", "-p", json.dumps({"spec": spec})
    )


def wait_phase(cluster, namespace: str, name: str, phase: str, timeout: float = 60) -> dict:
    return wait_until(
        lambda: (s := status(cluster, namespace, name)).get("phase") == phase and s,
        timeout=timeout,
        interval=0.3,
        what=f"job {name} to be {phase}",
    )


def wait_run_succeeded(cluster, namespace: str, name: str, run: int) -> dict:
    return wait_until(
        lambda: (
            (s := status(cluster, namespace, name)).get("runGeneration") == run
            and s.get("phase") == "Succeeded"
            and s
        ),
        timeout=60,
        interval=0.3,
        what=f"run {run} of job {name} to succeed",
    )


def reasons(obj_status: dict) -> list[str]:
    return [entry["reason"] for entry in obj_status.get("timeline", [])]


def test_suspend_holds_a_waiting_job_and_lets_a_running_attempt_finish(
    cluster, namespace, operator
):
    apply(
        cluster,
        namespace,
        pool_manifest("demo", replicas=1, concurrency=1),
        job_manifest("held", "add", {"a": 1, "b": 2}, suspend=True),
        job_manifest("nap", "sleep", {"seconds": 3}),
    )
    held = wait_phase(cluster, namespace, "held", "Suspended")
    assert conditions(held) == {"Ready": ("False", "Suspended"), "Suspended": ("True", "Suspended")}
    assert "spec.suspend" in held["message"]

    # A running attempt is not stopped by suspend: it finishes, and its outcome stands.
    wait_phase(cluster, namespace, "nap", "Running")
    patch_spec(cluster, namespace, "nap", suspend=True)
    nap = wait_phase(cluster, namespace, "nap", "Succeeded", timeout=30)
    assert nap["attempt"] == 1

    # The pool's only slot is free now, yet the suspended job does not run.
    wait_ready_workers(cluster, namespace, "demo", 1)
    held = status(cluster, namespace, "held")
    assert held["phase"] == "Suspended" and held["attempt"] == 0

    patch_spec(cluster, namespace, "held", suspend=False)
    held = wait_phase(cluster, namespace, "held", "Succeeded")
    assert held["result"] == 3
    assert reasons(held)[:2] == ["Suspended", "Resumed"], held["timeline"]
    assert reasons(held)[-2:] == ["Claimed", "Completed"]


def test_raising_run_generation_runs_a_finished_job_again(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("demo", replicas=1, concurrency=2),
        job_manifest("twice", "add", {"a": 2, "b": 3}),
    )
    first = wait_phase(cluster, namespace, "twice", "Succeeded")
    assert first["runGeneration"] == 0 and first["runs"] == []
    generation = job(cluster, namespace, "twice")["metadata"]["generation"]

    patch_spec(cluster, namespace, "twice", runGeneration=1)
    second = wait_run_succeeded(cluster, namespace, "twice", 1)
    # Attempt numbers go on across runs; the history and the count start again.
    assert second["result"] == 5 and second["attempt"] == 2, json.dumps(second, indent=1)
    assert [a["attempt"] for a in second["attempts"]] == [2]
    assert second["countedAttempts"] == 1
    assert [
        (r["runGeneration"], r["phase"], r["attempts"], r["lastAttempt"]) for r in second["runs"]
    ] == [(0, "Succeeded", 1, 1)]
    assert reasons(second) == ["RerunRequested", "Claimed", "Completed"]
    obj = job(cluster, namespace, "twice")
    # Only the patch above changed the spec: the operator never writes it.
    assert obj["metadata"]["generation"] == generation + 1
    assert obj["status"]["observedGeneration"] == generation + 1

    # Applying the same spec again (a GitOps sync) does not run it a third time.
    apply(cluster, namespace, job_manifest("twice", "add", {"a": 2, "b": 3}, runGeneration=1))
    wait_until(
        lambda: status(cluster, namespace, "twice").get("observedGeneration") is not None,
        timeout=5,
    )
    assert status(cluster, namespace, "twice")["runGeneration"] == 1
    assert len(status(cluster, namespace, "twice")["runs"]) == 1


def test_a_second_job_with_the_same_key_mirrors_the_first_across_a_restart(
    cluster, namespace, operator
):
    apply(cluster, namespace, pool_manifest("demo", replicas=1, concurrency=2))
    apply(
        cluster,
        namespace,
        job_manifest("first", "sleep", {"seconds": 6}, idempotencyKey="order-1"),
    )
    wait_phase(cluster, namespace, "first", "Running")
    apply(
        cluster,
        namespace,
        job_manifest("second", "sleep", {"seconds": 6}, idempotencyKey="order-1"),
    )
    second = wait_until(
        lambda: (s := status(cluster, namespace, "second")).get("mirrorOf") and s,
        timeout=30,
        what="the second job to mirror the first",
    )
    assert second["mirrorOf"]["name"] == "first" and second["phase"] == "Queued"
    assert conditions(second)["Reconciling"] == ("True", "Mirroring")

    # Nothing of this lives only in the operator's memory.
    operator.stop()
    operator.start()

    first = wait_phase(cluster, namespace, "first", "Succeeded", timeout=60)
    second = wait_phase(cluster, namespace, "second", "Succeeded", timeout=60)
    assert second["attempt"] == 0 and second["attempts"] == []
    assert "Claimed" not in reasons(second)
    assert second["result"] == first["result"]
    assert second["mirrorOf"]["uid"] == job(cluster, namespace, "first")["metadata"]["uid"]

    # A third one, after the first succeeded, ends at once with its result.
    apply(
        cluster, namespace, job_manifest("third", "sleep", {"seconds": 6}, idempotencyKey="order-1")
    )
    third = wait_phase(cluster, namespace, "third", "Succeeded", timeout=30)
    assert third["attempt"] == 0 and third["result"] == first["result"]

    # An earlier Job that failed does not count: the same key runs the work again.
    apply(
        cluster,
        namespace,
        job_manifest("bad", "explode", {"fatal": True}, idempotencyKey="order-2"),
    )
    wait_phase(cluster, namespace, "bad", "Failed")
    apply(
        cluster,
        namespace,
        job_manifest("retry", "add", {"a": 1, "b": 1}, idempotencyKey="order-2"),
    )
    again = wait_phase(cluster, namespace, "retry", "Succeeded")
    assert again["attempt"] == 1 and "mirrorOf" not in again


def test_a_job_nothing_can_run_says_why_and_runs_once_it_can(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("demo", replicas=1, concurrency=2),
        job_manifest("nope", "no-such-skill", {}),
        job_manifest("orphan", "add", {"a": 4, "b": 4}, pool="later"),
    )
    nope = wait_until(
        lambda: (
            (s := status(cluster, namespace, "nope")).get("conditions")
            and conditions(s).get("Schedulable") == ("False", "NoWorkerWithSkill")
            and s
        ),
        timeout=60,
        interval=0.5,
        what="the job for a skill no worker offers to say so",
    )
    assert conditions(nope)["Stalled"] == ("True", "NoWorkerWithSkill")
    assert "no-such-skill" in nope["message"]
    events = cluster.get_json(
        "-n", namespace, "events", "--field-selector", "involvedObject.name=nope"
    )["items"]
    assert any(e["reason"] == "NoWorkerWithSkill" and e["type"] == "Warning" for e in events)

    orphan = wait_until(
        lambda: (s := status(cluster, namespace, "orphan")).get("conditions") and s,
        timeout=30,
        what="the job of a missing pool to say so",
    )
    assert conditions(orphan)["Schedulable"] == ("False", "PoolNotFound")
    assert conditions(orphan)["Stalled"] == ("True", "PoolNotFound")

    apply(cluster, namespace, pool_manifest("later", replicas=1, concurrency=1))
    orphan = wait_phase(cluster, namespace, "orphan", "Succeeded", timeout=90)
    assert "Schedulable" not in conditions(orphan) and "Stalled" not in conditions(orphan)
    assert orphan["result"] == 8


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "holds.yaml"


def test_the_example_manifest_does_what_its_comments_say(cluster, namespace, operator):
    apply(cluster, namespace, pool_manifest("demo", replicas=1, concurrency=4))
    cluster.kubectl("-n", namespace, "apply", "-f", str(EXAMPLE))

    assert wait_phase(cluster, namespace, "nightly-report", "Suspended")["attempt"] == 0
    patch_spec(cluster, namespace, "nightly-report", suspend=False)
    assert wait_phase(cluster, namespace, "nightly-report", "Succeeded")["result"] == 42

    wait_phase(cluster, namespace, "thumbnail", "Succeeded")
    patch_spec(cluster, namespace, "thumbnail", runGeneration=1)
    rerun = wait_run_succeeded(cluster, namespace, "thumbnail", 1)
    assert len(rerun["runs"]) == 1

    first = wait_phase(cluster, namespace, "charge-order-9912", "Succeeded")
    second = wait_phase(cluster, namespace, "charge-order-9912-retry", "Succeeded")
    assert first["attempt"] == 1 and second["attempt"] == 0
    assert second["mirrorOf"]["name"] == "charge-order-9912"
    assert second["result"] == first["result"]
