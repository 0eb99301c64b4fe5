"""Operator replicas with --leader-elect on the real control plane: one leads, the others
stand by (serving probes, ready to take over), only the leader's pod carries the leader
label, and a hand-over neither loses nor repeats work."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import apply, get, job_manifest, pool_manifest, wait_ready_workers

from shiftboss.kube.leases import KubeLeaseStore, LeaseConflict, LeaseSpec, micro_time
from shiftboss.ownpod import LEADER_LABEL
from shiftboss.testing.cluster import free_port
from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until
from shiftboss.testing.service import ReadyService
from worker_runtime.protocol import ErrorResponse

#: The leader Lease in these tests (renew deadline 4 s, a renewal every 0.8 s).
LEASE_SECONDS = 6
RETRY_SECONDS = LEASE_SECONDS * 2 / 15


class Replicas:
    """Operator replicas with leader election, each on its own port; stopped at the end."""

    def __init__(self, cluster, namespace: str, logs: Path) -> None:
        self.cluster, self.namespace, self.logs = cluster, namespace, logs
        self.started: list[OperatorProcess] = []

    def start(
        self,
        name: str,
        *,
        port: int | None = None,
        worker_api_url: str | None = None,
        pod: str | None = None,
    ) -> OperatorProcess:
        """``pod``: the replica runs as this pod (as the chart's downward API tells it)."""
        args = [
            "--leader-elect",
            "--leader-elect-namespace",
            self.namespace,
            "--leader-elect-lease-seconds",
            str(LEASE_SECONDS),
        ]
        if worker_api_url:
            args += ["--worker-api-url", worker_api_url]
        own_pod = {"SHIFTBOSS_POD_NAME": pod, "SHIFTBOSS_POD_NAMESPACE": self.namespace}
        replica = OperatorProcess(
            {**self.cluster.env(), **(own_pod if pod else {})},
            self.logs / f"{name}.log",
            namespaces=[self.namespace],
            extra_args=args,
            port=port,
        )
        self.started.append(replica)
        return replica.start(wait=False)

    def stop_all(self) -> None:
        for replica in self.started:
            replica.stop()


@pytest.fixture
def replicas(cluster, namespace, tmp_path) -> Iterator[Replicas]:
    started = Replicas(cluster, namespace, tmp_path)
    yield started
    started.stop_all()


def status(url: str, path: str) -> int | None:
    try:
        return httpx.get(f"{url}{path}", timeout=2).status_code
    except httpx.HTTPError:
        return None


def wait_serving(replica: OperatorProcess, path: str, timeout: float) -> float:
    """Wait until ``path`` answers 200; returns the monotonic time it first did."""

    def answered() -> float | None:
        if not replica.process.running():
            raise AssertionError(f"replica exited:\n{replica.process.tail()}")
        return time.monotonic() if status(replica.url, path) == 200 else None

    return wait_until(answered, timeout=timeout, interval=0.1, what=f"{replica.url}{path}")


def leading(url: str) -> bool:
    """Whether the replica at ``url`` is the ready leader: a standby's /readyz answers 200
    too, but says ``"standby": true``."""
    try:
        ready = httpx.get(f"{url}/readyz", timeout=2)
    except httpx.HTTPError:
        return False
    return ready.status_code == 200 and "standby" not in ready.json()


def wait_leading(replica: OperatorProcess, timeout: float = 60) -> float:
    """Wait until ``replica`` leads and is ready; returns the monotonic time it first did."""

    def led() -> float | None:
        if not replica.process.running():
            raise AssertionError(f"replica exited:\n{replica.process.tail()}")
        return time.monotonic() if leading(replica.url) else None

    return wait_until(led, timeout=timeout, interval=0.1, what=f"{replica.url} to lead")


def lease_holder(cluster, namespace: str) -> str:
    return get(cluster, namespace, "leases.coordination.k8s.io", "shiftboss-operator")["spec"].get(
        "holderIdentity", ""
    )


FINAL_PHASES = ("Succeeded", "Failed", "Cancelled")


def pod_names(cluster, namespace: str) -> set[str]:
    return {p["metadata"]["name"] for p in get(cluster, namespace, "pods")["items"]}


def no_tracebacks(*replicas: OperatorProcess) -> None:
    for replica in replicas:
        log = replica.process.log.read_text(errors="replace")
        assert "Traceback" not in log, log[-5000:]


def test_a_standby_is_ready_refuses_the_protocol_and_takes_over_on_release(
    cluster, namespace, replicas
):
    first = replicas.start("first")
    wait_leading(first)
    second = replicas.start("second")
    wait_serving(second, "/healthz", timeout=60)

    ready = httpx.get(f"{second.url}/readyz", timeout=2)  # ready to take over
    assert (ready.status_code, ready.json()["standby"]) == (200, True)
    for path in ("/v1/workers/register", "/v1/workers/w/heartbeat", "/v1/attempts/u.1/complete"):
        answer = httpx.post(f"{second.url}{path}", json={}, timeout=2)
        assert answer.status_code == 503, path
        assert ErrorResponse.model_validate(answer.json()).error.code == "not_leader"
    assert lease_holder(cluster, namespace).endswith(f"-{first.process.pid}")
    assert leading(first.url)

    first.stop()  # SIGTERM: a clean stop releases the Lease
    released = time.monotonic()
    took_over = wait_leading(second, timeout=30)
    assert first.process.exit_code() == 0, first.process.tail(400)
    assert took_over - released < LEASE_SECONDS  # handed over, not left to expire
    assert lease_holder(cluster, namespace).endswith(f"-{second.process.pid}")
    no_tracebacks(first, second)


def test_the_standby_takes_over_one_lease_after_the_leader_is_killed(cluster, namespace, replicas):
    first = replicas.start("first")
    wait_leading(first)
    second = replicas.start("second")
    wait_serving(second, "/healthz", timeout=60)

    first.kill()  # SIGKILL: no release, the Lease must run out
    killed = time.monotonic()
    took_over = wait_leading(second, timeout=LEASE_SECONDS + 20)
    # Not before a whole lease of silence (the last renewal was at most one retry period
    # before the kill), and soon after it.
    assert LEASE_SECONDS - RETRY_SECONDS <= took_over - killed <= LEASE_SECONDS + 5
    lease = get(cluster, namespace, "leases.coordination.k8s.io", "shiftboss-operator")["spec"]
    assert lease["holderIdentity"].endswith(f"-{second.process.pid}")
    assert lease["leaseTransitions"] >= 1
    no_tracebacks(second)


def test_a_leader_that_was_frozen_past_its_lease_stops_and_exits_1(cluster, namespace, replicas):
    first = replicas.start("first")
    wait_leading(first)
    second = replicas.start("second")
    wait_serving(second, "/healthz", timeout=60)

    pid = first.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a stalled process (or node): it cannot renew
    try:
        wait_leading(second, timeout=LEASE_SECONDS + 20)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: not first.process.running(), timeout=20, what="the old leader to exit")
    assert first.process.exit_code() == 1
    log = first.process.log.read_text(errors="replace")
    assert "lost leadership: the Lease was not renewed within 4s" in log
    assert lease_holder(cluster, namespace).endswith(f"-{second.process.pid}")
    assert leading(second.url)


def test_a_leader_hand_over_during_long_jobs_costs_no_attempt(cluster, namespace, replicas):
    """Jobs that may not be retried run across a leader crash: each succeeds, once."""
    ports = free_port(), free_port()
    with ReadyService([f"http://127.0.0.1:{port}" for port in ports]) as service:
        first = replicas.start("first", port=ports[0], worker_api_url=service.url)
        wait_leading(first)
        second = replicas.start("second", port=ports[1], worker_api_url=service.url)
        wait_serving(second, "/healthz", timeout=60)

        apply(cluster, namespace, pool_manifest("demo", replicas=2, concurrency=2))
        wait_ready_workers(cluster, namespace, "demo", 2)
        pods_before = pod_names(cluster, namespace)
        names = [f"long-{i}" for i in range(4)]
        apply(
            cluster,
            namespace,
            *(
                job_manifest(name, "sleep", {"seconds": 20}, retry={"maxAttempts": 1})
                for name in names
            ),
        )

        def all_running() -> bool:
            jobs = get(cluster, namespace, "jobs.shiftboss.io")["items"]
            return sum(j.get("status", {}).get("phase") == "Running" for j in jobs) == len(names)

        wait_until(all_running, timeout=60, interval=0.3, what="every job to run")
        time.sleep(3)  # mid-run: the workers are in the middle of their skills
        first.kill()
        wait_leading(second, timeout=LEASE_SECONDS + 20)
        assert all_running()  # the new leader took over work in flight

        def finished() -> list[dict] | None:
            jobs = get(cluster, namespace, "jobs.shiftboss.io")["items"]
            done = [j for j in jobs if j.get("status", {}).get("phase") in FINAL_PHASES]
            return jobs if len(done) == len(names) else None

        jobs = wait_until(finished, timeout=120, interval=0.5, what="every job to finish")
        outcomes = {
            j["metadata"]["name"]: (
                j["status"]["phase"],
                j["status"].get("attempt"),
                [(a.get("attempt"), a.get("outcome")) for a in j["status"].get("attempts", [])],
            )
            for j in jobs
        }
        assert outcomes == {name: ("Succeeded", 1, [(1, "Succeeded")]) for name in names}
        assert pod_names(cluster, namespace) == pods_before  # one URL: no rollout on hand-over
        no_tracebacks(second)


def operator_pods(cluster, namespace: str, *names: str, stale: str) -> None:
    """Pods for replicas to run as (sleeping on the process node); ``stale`` carries the
    leader label already, as a former leader's pod does when its container restarts."""
    apply(
        cluster,
        namespace,
        *(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "labels": {"app": "op", **({LEADER_LABEL: "true"} if name == stale else {})},
                },
                "spec": {
                    "containers": [
                        {"name": "main", "image": "python:3.11", "command": ["sleep", "3600"]}
                    ]
                },
            }
            for name in names
        ),
    )


def leader_labels(cluster, namespace: str) -> dict[str, str | None]:
    pods = cluster.get_json("-n", namespace, "pods", "-l", "app=op")["items"]
    return {p["metadata"]["name"]: p["metadata"].get("labels", {}).get(LEADER_LABEL) for p in pods}


def wait_labels(cluster, namespace: str, expected: dict[str, str | None]) -> None:
    wait_until(
        lambda: leader_labels(cluster, namespace) == expected,
        timeout=30,
        interval=0.2,
        what=f"leader labels {expected}",
    )


def test_only_the_leaders_pod_carries_the_leader_label(cluster, namespace, replicas):
    """The worker API Service selects it: standbys are ready, but never routed to."""
    operator_pods(cluster, namespace, "op-a", "op-b", stale="op-b")
    first = replicas.start("first", pod="op-a")
    wait_leading(first)
    second = replicas.start("second", pod="op-b")
    wait_serving(second, "/healthz", timeout=60)
    # op-b's stale label went before its standby answered probes
    assert leader_labels(cluster, namespace) == {"op-a": "true", "op-b": None}

    first.kill()  # SIGKILL: it cannot remove its label
    wait_leading(second, timeout=LEASE_SECONDS + 20)
    wait_labels(cluster, namespace, {"op-a": "true", "op-b": "true"})

    restarted = replicas.start("restarted", pod="op-a")  # as the kubelet restarts it
    wait_serving(restarted, "/healthz", timeout=60)
    assert leader_labels(cluster, namespace) == {"op-a": None, "op-b": "true"}

    second.stop()  # a clean stop removes the label, then releases the Lease
    assert second.process.exit_code() == 0, second.process.tail(400)
    assert leader_labels(cluster, namespace)["op-b"] is None
    wait_leading(restarted, timeout=30)
    wait_labels(cluster, namespace, {"op-a": "true", "op-b": None})
    log = second.process.log.read_text(errors="replace")
    assert f"removed {LEADER_LABEL} on pod {namespace}/op-b" in log
    no_tracebacks(first, second, restarted)


async def test_lease_writes_are_conditional_on_the_resource_version(kube, namespace):
    store = KubeLeaseStore(kube, namespace, name="conditional")
    assert await store.get() is None
    created = await store.create(LeaseSpec(holder="a", duration_seconds=15))
    with pytest.raises(LeaseConflict):
        await store.create(LeaseSpec(holder="b", duration_seconds=15))
    renewed = await store.update(
        LeaseSpec(holder="a", duration_seconds=15, renew_time=micro_time(dt.datetime.now(dt.UTC))),
        created.resource_version,
    )
    with pytest.raises(LeaseConflict):  # decided on what was read before that renewal
        await store.update(
            LeaseSpec(holder="b", duration_seconds=15, transitions=1), created.resource_version
        )
    released = await store.update(
        LeaseSpec(holder=None, duration_seconds=1), renewed.resource_version
    )
    assert released.spec.holder is None
    assert await store.get() == released
