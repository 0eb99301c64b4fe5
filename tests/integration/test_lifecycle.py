"""Job lifecycle and pool behaviour on the real control plane, with real worker pods."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time

import httpx
import pytest
from conftest import apply, get, job_manifest, pool_manifest, wait_jobs_done, wait_ready_workers

from shiftboss.testing.processes import wait_until

NO_DELAY = {"maxAttempts": 2, "backoff": {"initialDelaySeconds": 0, "maxDelaySeconds": 0}}


def job_status(cluster, namespace: str, name: str) -> dict:
    return get(cluster, namespace, "jobs.shiftboss.io", name).get("status", {})


def wait_phase(cluster, namespace: str, name: str, phases: set[str], timeout: float = 90) -> dict:
    def reached():
        status = job_status(cluster, namespace, name)
        return status if status.get("phase") in phases else None

    return wait_until(
        reached, timeout=timeout, interval=0.3, what=f"job {name} in {sorted(phases)}"
    )


def pool_pods(cluster, namespace: str, pool: str = "demo") -> list[dict]:
    pods = get(cluster, namespace, "pods")["items"]
    return [p for p in pods if p["metadata"].get("labels", {}).get("shiftboss.io/pool") == pool]


def live_pods(cluster, namespace: str, pool: str = "demo") -> list[dict]:
    return [
        p
        for p in pool_pods(cluster, namespace, pool)
        if not p["metadata"].get("deletionTimestamp")
        and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    ]


def read_watch_until_deleted(watch: subprocess.Popen, name: str, timeout: float) -> list[dict]:
    """The watch events of Job ``name`` (one JSON document each) up to its DELETED one."""
    lines: queue.Queue[str] = queue.Queue()
    assert watch.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in watch.stdout], daemon=True).start()
    decoder, buffer, events = json.JSONDecoder(), "", []
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            buffer += lines.get(timeout=remaining)
        except queue.Empty:
            break
        try:
            event, _ = decoder.raw_decode(buffer.strip())
        except ValueError:
            continue  # a document spans several lines
        buffer = ""
        if event["object"]["metadata"]["name"] == name:
            events.append(event)
            if event["type"] == "DELETED":
                return events
    raise AssertionError(f"job {name} was not deleted within {timeout}s: {events}")


def events_for(cluster, namespace: str, name: str) -> list[dict]:
    items = get(cluster, namespace, "events")["items"]
    return [e for e in items if e["involvedObject"]["name"] == name]


def test_failing_skill_ends_failed_with_its_error(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("demo", replicas=1),
        job_manifest("fatal", "explode", {"message": "disk on fire", "fatal": True}),
        job_manifest("flaky", "explode", {"message": "try again", "fatal": False}, retry=NO_DELAY),
    )
    fatal = wait_phase(cluster, namespace, "fatal", {"Failed", "Succeeded"})
    assert fatal["phase"] == "Failed"
    assert fatal["error"] == {"type": "FatalError", "message": "disk on fire", "retryable": False}
    assert fatal["attempt"] == 1  # never retried
    flaky = wait_phase(cluster, namespace, "flaky", {"Failed", "Succeeded"})
    assert flaky["phase"] == "Failed"
    assert flaky["attempt"] == 2  # retried once, then out of attempts
    assert [a["outcome"] for a in flaky["attempts"]] == ["Failed", "Failed"]
    assert flaky["error"]["type"] == "RuntimeError"
    assert "no attempts left" in flaky["message"]
    reasons = {e["reason"] for e in events_for(cluster, namespace, "flaky")}
    assert {"Retrying", "Failed"} <= reasons
    # The dead-letter view: failed jobs by field selector.
    failed = cluster.kubectl(
        "-n", namespace, "get", "sbj", "--field-selector", "status.phase=Failed", "-o", "name"
    ).stdout.split()
    assert sorted(failed) == ["job.shiftboss.io/fatal", "job.shiftboss.io/flaky"]


def test_params_that_break_the_schema_fail_without_running(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("demo", replicas=1),
        job_manifest("bad", "resize", {"url": "x", "width": "wide"}),
        job_manifest("good", "resize", {"url": "x", "width": 10}),
    )
    bad = wait_phase(cluster, namespace, "bad", {"Failed", "Succeeded"})
    assert bad["phase"] == "Failed"
    assert bad["error"]["type"] == "InvalidParams"
    assert bad["error"]["retryable"] is False
    assert "spec.params.width" in bad["error"]["message"]
    assert bad["attempt"] == 0 and not bad.get("attempts")  # it never ran
    good = wait_phase(cluster, namespace, "good", {"Failed", "Succeeded"})
    assert good["result"]["thumbnail"] == "x?w=10"


def test_worker_killed_mid_job_the_job_moves_to_another_worker(cluster, namespace, operator):
    apply(cluster, namespace, pool_manifest("demo", replicas=2))
    wait_ready_workers(cluster, namespace, "demo", 2)
    apply(cluster, namespace, job_manifest("long", "sleep", {"seconds": 4}, retry=NO_DELAY))
    running = wait_phase(cluster, namespace, "long", {"Running"})
    victim = running["worker"]
    cluster.kubectl("-n", namespace, "delete", "pod", victim, "--grace-period=0", "--force")
    done = wait_phase(cluster, namespace, "long", {"Succeeded", "Failed"}, timeout=60)
    assert done["phase"] == "Succeeded"
    assert done["attempt"] == 2
    # Its pod was deleted: a disruption, not the job's fault, so not counted.
    assert done["attempts"][0]["outcome"] == "Disrupted"
    assert done["countedAttempts"] == 1  # the successful attempt only
    assert done["attempts"][0]["worker"] == victim
    assert done["attempts"][1]["worker"] != victim
    # The dead attempt's late report is refused and changes nothing.
    uid = get(cluster, namespace, "jobs.shiftboss.io", "long")["metadata"]["uid"]
    token = cluster.kubectl(
        "-n", namespace, "create", "token", "default", "--audience", "shiftboss"
    ).stdout.strip()
    before = get(cluster, namespace, "jobs.shiftboss.io", "long")["metadata"]["resourceVersion"]
    response = httpx.post(
        f"{operator.url}/v1/attempts/{uid}.1/complete",
        json={"result": "late"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "attempt_not_current"
    after = get(cluster, namespace, "jobs.shiftboss.io", "long")
    assert after["metadata"]["resourceVersion"] == before
    assert after["status"]["result"] == {"slept": 4}


def test_scale_up_and_down(cluster, namespace, operator):
    apply(cluster, namespace, pool_manifest("demo", replicas=1))
    wait_ready_workers(cluster, namespace, "demo", 1)
    cluster.kubectl("-n", namespace, "scale", "wp/demo", "--replicas=3")
    wait_ready_workers(cluster, namespace, "demo", 3)
    assert len(live_pods(cluster, namespace)) == 3
    cluster.kubectl("-n", namespace, "scale", "wp/demo", "--replicas=1")
    wait_until(
        lambda: len(pool_pods(cluster, namespace)) == 1, timeout=60, what="scale down to 1 pod"
    )
    status = get(cluster, namespace, "workerpools.shiftboss.io", "demo")["status"]
    wait_until(
        lambda: (
            get(cluster, namespace, "workerpools.shiftboss.io", "demo")["status"]["readyReplicas"]
            == 1
        ),
        timeout=30,
        what="status.readyReplicas == 1",
    )
    assert status["selector"] == "shiftboss.io/pool=demo"


def test_template_change_rolls_pods_without_cutting_a_job_short(cluster, namespace, operator):
    apply(cluster, namespace, pool_manifest("demo", replicas=2))
    wait_ready_workers(cluster, namespace, "demo", 2)
    old = {p["metadata"]["name"] for p in live_pods(cluster, namespace)}
    old_hash = get(cluster, namespace, "workerpools.shiftboss.io", "demo")["status"]["templateHash"]
    apply(
        cluster, namespace, job_manifest("busy", "sleep", {"seconds": 3}, retry={"maxAttempts": 1})
    )
    wait_phase(cluster, namespace, "busy", {"Running"})
    patch = {
        "spec": {
            "env": [
                {"name": "PYTHONPATH", "value": pool_manifest("x")["spec"]["env"][0]["value"]},
                {"name": "ROLLOUT", "value": "2"},
            ]
        }
    }
    cluster.kubectl("-n", namespace, "patch", "wp/demo", "--type=merge", "-p", json.dumps(patch))

    def rolled():
        pods = live_pods(cluster, namespace)
        names = {p["metadata"]["name"] for p in pods}
        hashes = {p["metadata"]["labels"]["shiftboss.io/template-hash"] for p in pods}
        return len(pods) == 2 and not names & old and old_hash not in hashes

    wait_until(rolled, timeout=120, interval=0.5, what="the pool to roll to the new template")
    busy = wait_phase(cluster, namespace, "busy", {"Succeeded", "Failed"})
    assert busy["phase"] == "Succeeded" and busy["attempt"] == 1  # finished on its old worker
    wait_ready_workers(cluster, namespace, "demo", 2)


def test_deleting_the_pool_removes_its_pods(cluster, namespace, operator):
    apply(cluster, namespace, pool_manifest("demo", replicas=2))
    wait_ready_workers(cluster, namespace, "demo", 2)
    cluster.kubectl("-n", namespace, "delete", "wp/demo")
    wait_until(
        lambda: not pool_pods(cluster, namespace),
        timeout=90,
        interval=0.5,
        what="the garbage collector to delete the pool's pods",
    )


def start_jobs_and_wait_for_one_running(cluster, namespace: str, count: int = 8) -> None:
    """A pool of 2 workers and ``count`` one-second jobs, some queued and one running."""
    apply(cluster, namespace, pool_manifest("demo", replicas=2))
    wait_ready_workers(cluster, namespace, "demo", 2)
    apply(
        cluster, namespace, *[job_manifest(f"s-{i}", "sleep", {"seconds": 1}) for i in range(count)]
    )
    wait_until(
        lambda: any(
            j.get("status", {}).get("phase") == "Running"
            for j in get(cluster, namespace, "jobs.shiftboss.io")["items"]
        ),
        timeout=60,
        what="a running job",
    )


def assert_each_succeeded_once(items: list[dict]) -> None:
    """Each job ran exactly once: one attempt, and it succeeded (not merely one success)."""
    for job in items:
        status = job["status"]
        assert (status["phase"], status["attempt"]) == ("Succeeded", 1), status
        assert [a["outcome"] for a in status["attempts"]] == ["Succeeded"], status


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_operator_restart_loses_no_job_and_runs_none_twice(cluster, namespace, operator, how):
    start_jobs_and_wait_for_one_running(cluster, namespace)
    if how == "sigkill":
        operator.kill()  # a crash: queued and running jobs in flight
    else:
        operator.stop()
    time.sleep(1)
    operator.start()
    items = wait_jobs_done(cluster, namespace, 8, timeout=120)
    assert_each_succeeded_once(items)


def test_a_first_time_success_costs_two_status_writes(cluster, namespace, operator):
    apply(cluster, namespace, pool_manifest("demo", replicas=1))
    wait_ready_workers(cluster, namespace, "demo", 1)
    for i in range(5):
        apply(cluster, namespace, job_manifest(f"w-{i}", "add", {"a": i, "b": i}))
        wait_phase(cluster, namespace, f"w-{i}", {"Succeeded"})
    metrics = httpx.get(f"{operator.url}/metrics").text
    writes = {
        line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("shiftboss_job_status_writes_total{")
    }
    assert writes == {'event="Claimed"': 5.0, 'event="Completed"': 5.0}
    for i in range(5):
        job = get(cluster, namespace, "jobs.shiftboss.io", f"w-{i}")
        annotations = job["metadata"].get("annotations") or {}
        assert not [k for k in annotations if "kopf" in k]  # no Kopf bookkeeping on jobs
        assert job["metadata"].get("finalizers") is None


def test_cancel_a_running_job(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("demo", replicas=1),
        job_manifest("nap", "sleep", {"seconds": 300}),
    )
    wait_phase(cluster, namespace, "nap", {"Running"})
    cluster.kubectl(
        "-n", namespace, "patch", "sbj/nap", "--type=merge", "-p", '{"spec":{"cancel":true}}'
    )
    status = wait_phase(cluster, namespace, "nap", {"Cancelled", "Succeeded", "Failed"}, timeout=30)
    assert status["phase"] == "Cancelled"
    assert status["attempts"][-1]["outcome"] == "Cancelled"
    # The worker stops the skill and is free again: the next job runs on it.
    apply(cluster, namespace, job_manifest("after", "add", {"a": 1, "b": 1}))
    assert wait_phase(cluster, namespace, "after", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    # cancel cannot be undone
    undo = cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "sbj/nap",
        "--type=merge",
        "-p",
        '{"spec":{"cancel":false}}',
        check=False,
    )
    assert undo.returncode != 0


def test_attempt_timeout_then_retry_policy_decides(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        pool_manifest("demo", replicas=1),
        job_manifest(
            "slow",
            "sleep",
            {"seconds": 300},
            timeoutSeconds=2,
            retry={"maxAttempts": 2, "backoff": {"initialDelaySeconds": 0, "maxDelaySeconds": 0}},
        ),
    )
    status = wait_phase(cluster, namespace, "slow", {"Failed", "Succeeded"}, timeout=60)
    assert status["phase"] == "Failed"
    assert [a["outcome"] for a in status["attempts"]] == ["TimedOut", "TimedOut"]
    assert status["error"]["type"] == "TimedOut"


def test_finished_jobs_are_deleted_after_their_ttl(cluster, namespace, operator):
    apply(cluster, namespace, pool_manifest("demo", replicas=1))
    # Every version of the Job, as the API server announces it, until it is deleted.
    watch = subprocess.Popen(
        [
            cluster.kubectl_binary(),
            f"--kubeconfig={cluster.kubeconfig}",
            "-n",
            namespace,
            "get",
            "sbj",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        apply(
            cluster,
            namespace,
            job_manifest("short-lived", "add", {"a": 1, "b": 2}, ttlSecondsAfterFinished=1),
        )
        events = read_watch_until_deleted(watch, "short-lived", timeout=60)
    finally:
        watch.kill()
        watch.wait()
    deleted = events[-1]["object"]
    # It was deleted as it last was: finished, with its result, at least its TTL later.
    assert deleted["status"]["phase"] == "Succeeded"
    assert deleted["status"]["result"] == 3
    assert "Succeeded" in [e["object"].get("status", {}).get("phase") for e in events[:-1]]


def test_a_waiting_job_says_why_and_a_paused_pool_resumes(cluster, namespace, operator):
    apply(
        cluster,
        namespace,
        job_manifest("orphan", "add", {"a": 1, "b": 1}, pool="nowhere"),
        pool_manifest("demo", replicas=1, paused=True),
        job_manifest("held", "add", {"a": 2, "b": 2}),
    )
    orphan = wait_phase(cluster, namespace, "orphan", {"Queued"})
    assert "no WorkerPool 'nowhere'" in orphan["message"]
    held = wait_phase(cluster, namespace, "held", {"Queued"})
    assert "paused" in held["message"]
    wait_ready_workers(cluster, namespace, "demo", 1)
    # A ready (so registered, so claiming) worker of a paused pool still gets nothing.
    wait_until(
        lambda: "registered for pool demo" in operator.process.log.read_text(errors="replace"),
        timeout=30,
        what="the worker's registration",
    )
    assert job_status(cluster, namespace, "held")["phase"] == "Queued"
    cluster.kubectl(
        "-n", namespace, "patch", "wp/demo", "--type=merge", "-p", '{"spec":{"paused":false}}'
    )
    assert wait_phase(cluster, namespace, "held", {"Succeeded", "Failed"})["result"] == 4


def test_api_server_restart_loses_no_job(cluster, namespace, operator):
    if not hasattr(cluster, "restart_apiserver"):
        pytest.skip("needs the local control plane (it restarts its API server)")
    start_jobs_and_wait_for_one_running(cluster, namespace)
    cluster.restart_apiserver(down_seconds=3)
    items = wait_jobs_done(cluster, namespace, 8, timeout=180)
    assert_each_succeeded_once(items)


def test_a_pool_whose_pods_are_refused_says_so_instead_of_looping(cluster, namespace, operator):
    apply(cluster, namespace, pool_manifest("demo", replicas=1, serviceAccountName="missing"))

    def degraded():
        status = get(cluster, namespace, "workerpools.shiftboss.io", "demo").get("status", {})
        found = [c for c in status.get("conditions", []) if c["type"] == "Degraded"]
        return found[0] if found and found[0]["status"] == "True" else None

    condition = wait_until(degraded, timeout=60, what="the pool's Degraded condition")
    assert condition["reason"] == "PodCreateFailed"
    assert 'serviceaccount "missing" not found' in condition["message"]
    warnings = [
        e for e in events_for(cluster, namespace, "demo") if e["reason"] == "PodCreateFailed"
    ]
    assert len(warnings) == 1  # said once, not once per retry
    # Fixing the cause heals the pool.
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "missing")
    wait_ready_workers(cluster, namespace, "demo", 1, timeout=90)
    wait_until(lambda: degraded() is None, timeout=30, what="Degraded to clear")
