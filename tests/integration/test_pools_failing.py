"""Pools that fail, fail calmly: back-off, one Event with a count, conditions that agree,
and the worker's own exit reason in the pool's status (real control plane, real pods)."""

from __future__ import annotations

import json
import time

from conftest import apply, get, pool_manifest, wait_ready_workers

from shiftboss.kube.client import EVENTS, KubeClient
from shiftboss.kube.events import EventRecorder
from shiftboss.testing.processes import wait_until

IMPORT_ERROR = "no module named 'nosuchmodule'"


def pool_status(cluster, namespace: str, name: str = "demo") -> dict:
    return get(cluster, namespace, "workerpools.shiftboss.io", name).get("status", {})


def conditions(cluster, namespace: str, name: str = "demo") -> dict[str, dict]:
    return {c["type"]: c for c in pool_status(cluster, namespace, name).get("conditions", [])}


def pool_pods(cluster, namespace: str, pool: str = "demo") -> list[dict]:
    pods = get(cluster, namespace, "pods")["items"]
    return [p for p in pods if p["metadata"].get("labels", {}).get("shiftboss.io/pool") == pool]


def pool_events(cluster, namespace: str, reason: str, name: str = "demo") -> list[dict]:
    items = get(cluster, namespace, "events")["items"]
    return [e for e in items if e["involvedObject"]["name"] == name and e["reason"] == reason]


def pool_status_writes(cluster) -> float:
    """PATCH requests to any WorkerPool's status the API server has served so far."""
    metrics = cluster.kubectl("get", "--raw", "/metrics").stdout
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("apiserver_request_total{")
        and 'resource="workerpools"' in line
        and 'subresource="status"' in line
        and 'verb="PATCH"' in line
    )


def wait_degraded(cluster, namespace: str, status: str, timeout: float) -> dict[str, dict]:
    def reached():
        found = conditions(cluster, namespace)
        return found if found.get("Degraded", {}).get("status") == status else None

    return wait_until(reached, timeout=timeout, interval=0.5, what=f"Degraded={status}")


def test_a_pool_whose_app_cannot_be_imported_backs_off_and_says_why(cluster, namespace, operator):
    writes_before = pool_status_writes(cluster)
    start = time.monotonic()
    apply(cluster, namespace, pool_manifest("demo", app="nosuchmodule:worker"))
    pods_seen: set[str] = set()

    def second_exit():
        pods_seen.update(p["metadata"]["name"] for p in pool_pods(cluster, namespace))
        events = pool_events(cluster, namespace, "WorkerCrashLoop")
        return events if any(e.get("count", 1) >= 2 for e in events) else None

    events = wait_until(second_exit, timeout=40, interval=0.5, what="a second worker exit")
    elapsed = time.monotonic() - start
    # Two exits took at least the first back-off (10 s); without one there would be a
    # new pod every second or so by now.
    assert elapsed >= 10, elapsed
    assert len(pods_seen) <= 3, (elapsed, sorted(pods_seen))
    # Status writes follow changes (the first status, the worker starting, each exit),
    # not reconciles: every pod event and re-check reconciles the pool.
    writes = pool_status_writes(cluster) - writes_before
    assert writes <= 5, writes  # 4 here; a write per reconcile made 9

    # One Warning Event for this failure, its count raised; the worker's own error in it.
    assert len(events) == 1, events
    (event,) = events
    assert event["type"] == "Warning"
    assert event["count"] >= 2
    assert IMPORT_ERROR in event["message"].lower(), event["message"]
    assert event["message"].startswith("worker exited with code 2: "), event["message"]

    # Conditions that agree: Degraded (with the cause and the back-off), Stalled, not
    # Ready, not Progressing (held back).
    found = wait_degraded(cluster, namespace, "True", timeout=10)
    degraded = found["Degraded"]
    assert degraded["reason"] == "WorkerCrashLoop"
    assert IMPORT_ERROR in degraded["message"].lower(), degraded["message"]
    assert "exits in a row; replaced after a" in degraded["message"], degraded["message"]
    assert (found["Stalled"]["status"], found["Stalled"]["reason"]) == ("True", "WorkerCrashLoop")
    assert found["Ready"]["status"] == "False"
    assert (found["Progressing"]["status"], found["Progressing"]["reason"]) == (
        "False",
        "WorkerCrashLoop",
    )
    assert "Reconciling" not in found

    # During the back-off the exited pod stays, its exit reason in its status.
    held = [p for p in pool_pods(cluster, namespace) if p["status"].get("phase") == "Failed"]
    assert held, "the exited worker's pod is kept during the back-off"
    terminated = held[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 2
    assert IMPORT_ERROR in terminated["message"].lower(), terminated

    # Fixing the app ends it at once (a new template is not held back by the old one).
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "workerpool",
        "demo",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"app": "demo_worker:worker"}}),
    )
    wait_ready_workers(cluster, namespace, "demo", 1, timeout=60)
    found = wait_degraded(cluster, namespace, "False", timeout=20)
    assert found["Ready"]["status"] == "True"
    assert "Stalled" not in found
    assert not [p for p in pool_pods(cluster, namespace) if p["status"].get("phase") == "Failed"]
    assert len(pool_events(cluster, namespace, "WorkerCrashLoop")) == 1


def test_a_pool_whose_pods_are_refused_records_one_event_with_a_count(cluster, namespace, operator):
    cluster.kubectl("-n", namespace, "create", "quota", "no-pods", "--hard=pods=0")
    # The quota admits nothing until its controller has counted the namespace's pods.
    wait_until(
        lambda: get(cluster, namespace, "resourcequota", "no-pods").get("status", {}).get("hard"),
        timeout=30,
        what="the quota's status",
    )
    start = time.monotonic()
    apply(cluster, namespace, pool_manifest("demo"))

    def repeated():
        events = pool_events(cluster, namespace, "PodCreateFailed")
        return events if any(e.get("count", 1) >= 2 for e in events) else None

    events = wait_until(repeated, timeout=30, interval=0.25, what="a second refusal")
    elapsed = time.monotonic() - start
    assert len(events) == 1, events
    (event,) = events
    # Refusals back off (5 s, then 10 s...): not one every second.
    assert elapsed >= 4.5, elapsed
    assert "exceeded quota" in event["message"], event["message"]
    assert event["type"] == "Warning"

    found = wait_degraded(cluster, namespace, "True", timeout=10)
    assert found["Degraded"]["reason"] == "PodCreateFailed"
    assert found["Degraded"]["message"] == event["message"]
    assert (found["Progressing"]["status"], found["Progressing"]["reason"]) == (
        "False",
        "PodCreateFailed",
    )
    assert found["Stalled"]["status"] == "True"

    # Lifting the quota heals the pool at the next try (10 s after the second).
    cluster.kubectl("-n", namespace, "delete", "quota", "no-pods")
    wait_ready_workers(cluster, namespace, "demo", 1, timeout=60)
    found = wait_degraded(cluster, namespace, "False", timeout=20)
    assert "Stalled" not in found
    (event,) = pool_events(cluster, namespace, "PodCreateFailed")
    assert event["count"] <= 3, event  # 0 s, 5 s, and at most one more at 15 s


async def test_the_event_recorder_counts_repeats_and_continues_after_a_restart(
    cluster, namespace, kube: KubeClient
):
    what = {
        "kind": "WorkerPool",
        "namespace": namespace,
        "name": "demo",
        "uid": "00000000-0000-0000-0000-000000000001",
        "reason": "WorkerCrashLoop",
        "warning": True,
    }
    recorder = EventRecorder(kube, min_interval_seconds=60)
    for _ in range(3):
        recorder.record(**what, message="worker exited with code 1: boom")
    recorder.record(**what, message="worker exited with code 2: other")
    await recorder.flush()
    # A restarted operator (a new recorder) continues the same Event.
    restarted = EventRecorder(kube)
    restarted.record(**what, message="worker exited with code 1: boom")
    await restarted.flush()

    events = (await kube.get(EVENTS.path(namespace)))["items"]
    counts = {e["message"]: e["count"] for e in events}
    assert counts == {"worker exited with code 1: boom": 4, "worker exited with code 2: other": 1}
    (boom,) = [e for e in events if e["message"].endswith("boom")]
    assert boom["type"] == "Warning"
    assert boom["involvedObject"]["kind"] == "WorkerPool"
    assert boom["firstTimestamp"] <= boom["lastTimestamp"]
