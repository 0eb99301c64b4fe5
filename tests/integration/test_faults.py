"""The guarantees under real faults, on the real control plane with real worker pods.

Every test counts how often each skill really ran (``apps/fault_worker.py`` leaves a
trace line per start, stop and end) and how each Job ended, and expects exact numbers:
a claim answer dropped on the wire (the operator away for two minutes is in
``test_operator_outage.py``),
the API server answering 429 and timing out, the API server frozen across a lease
expiry, a sync skill cancelled, a pool rolled out under busy workers.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import apply, job_manifest, pool_manifest, wait_ready_workers
from fakeworker import Api, create_token, job_status
from traced import ONCE, assert_ran_once, events_of, fault_pool, jobs, runs, wait_phases

from shiftboss.testing.cluster import free_port
from shiftboss.testing.faults import ApiServerProxy, FaultProxy, kube_status
from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until

pytestmark = pytest.mark.usefixtures("local_cluster_only")


# -- the wire between worker and operator ----------------------------------------------------


@contextlib.contextmanager
def operator_behind(
    cluster, namespace: str, log: Path
) -> Iterator[tuple[OperatorProcess, FaultProxy]]:
    """An operator whose workers reach it through a FaultProxy (their ``SHIFTBOSS_OPERATOR_URL``)."""
    port = free_port()
    with FaultProxy(f"http://127.0.0.1:{port}") as wire:
        extra = ["--worker-api-url", wire.url]
        with OperatorProcess(
            cluster.env(), log, namespaces=[namespace], port=port, extra_args=extra
        ) as operator:
            yield operator, wire


def test_a_claim_answer_dropped_on_the_wire_costs_no_attempt(
    cluster, namespace, trace, operator_log
):
    with operator_behind(cluster, namespace, operator_log) as (_, wire):
        pool = fault_pool("demo", trace, env={"SHIFTBOSS_CLAIM_WAIT_SECONDS": "1"})
        apply(cluster, namespace, pool)
        wait_ready_workers(cluster, namespace, "demo", 1)
        with wire.drop_reply(method="POST", path=r"/claim$") as dropped:
            apply(cluster, namespace, job_manifest("once", "work", {"seconds": 1}, retry=ONCE))
            wait_until(
                lambda: job_status(cluster, namespace, "once").get("phase") == "Running",
                timeout=30,
                what="the claim to be written (its answer dropped)",
            )
            dropped.wait_hits(2, timeout=10)  # the worker's retry of that claim is lost too
        status = wait_phases(cluster, namespace, ["once"], {"Succeeded", "Failed"}, 60)["once"]
    assert_ran_once(status)
    assert runs(trace) == Counter({"once": 1})


# -- the API server misbehaving ---------------------------------------------------------------


def test_throttling_and_timeouts_of_the_api_server_lose_no_timer_transition(
    cluster, namespace, trace, operator_log
):
    """While every write and deletion of Jobs by the operator gets 429 (then hangs), the
    timers come due: a lease runs out, an attempt times out, a new job waits long enough to
    be written Queued, a queued job is cancelled, a retrying job passes its deadline, a
    finished job's TTL ends.  Each transition lands, once, when the API server answers."""
    with (
        ApiServerProxy(cluster) as api_server,
        OperatorProcess(api_server.env(), operator_log, namespaces=[namespace]) as operator,
    ):
        apply(
            cluster,
            namespace,
            fault_pool("demo", trace),
            pool_manifest("idle", replicas=0, paused=True),
        )
        wait_ready_workers(cluster, namespace, "demo", 1)
        silent = Api(operator.url, create_token(cluster, namespace))
        silent.register_when_pool_known("silent-1", {"lonely": {"type": "object"}})
        silent.register("silent-2", {"retried": {"type": "object"}})
        backoff = {"initialDelaySeconds": 60, "maxDelaySeconds": 60}
        apply(
            cluster,
            namespace,
            job_manifest("ttl", "work", {"seconds": 0}, ttlSecondsAfterFinished=6),
            job_manifest("lost", "lonely", {}, retry=ONCE),
            job_manifest(
                "late",
                "retried",
                {},
                activeDeadlineSeconds=8,
                retry={"maxAttempts": 3, "backoff": backoff},
            ),
            job_manifest("slow", "work", {"seconds": 300}, timeoutSeconds=5, retry=ONCE),
        )
        assert [a.job.name for a in silent.claim("silent-1", wait=20)] == ["lost"]
        [late] = silent.claim("silent-2", wait=20)
        assert silent.fail(late.attempt_id, "Flaky").status_code == 200
        wait_phases(cluster, namespace, ["slow"], {"Running"}, timeout=30)
        wait_phases(cluster, namespace, ["ttl"], {"Succeeded"}, timeout=30)

        # From here on every lease, timeout, deadline and TTL above comes due in the fault.
        writes = {"path": r"/jobs/[^/]+(/status)?$"}
        throttled = kube_status(429, "TooManyRequests", "the operator is throttled")
        retry_after = {"Retry-After": "1"}
        with (
            api_server.respond(429, throttled, headers=retry_after, method="PATCH", **writes) as r1,
            api_server.respond(429, throttled, headers=retry_after, method="DELETE", **writes),
        ):
            apply(
                cluster,
                namespace,
                job_manifest("waiting", "work", {"seconds": 0}, pool="idle"),
                job_manifest("dropped", "work", {"seconds": 0}, pool="idle", cancel=True),
            )
            r1.wait_hits(5, timeout=30)
            time.sleep(10)  # the fault's length: everything above comes due in it
        with api_server.hang(method="PATCH", **writes) as hung:
            hung.wait_hits(1, timeout=30)
            time.sleep(10)
        final = wait_phases(
            cluster,
            namespace,
            ["lost", "late", "slow", "dropped"],
            {"Failed", "Cancelled"},
            timeout=90,
        )
        waiting = wait_phases(cluster, namespace, ["waiting"], {"Queued"}, timeout=30)["waiting"]
        wait_until(
            lambda: "ttl" not in jobs(cluster, namespace), timeout=60, what="the TTL deletion"
        )
        silent.close()
    lost, late, slow = final["lost"], final["late"], final["slow"]
    assert [a["outcome"] for a in lost["attempts"]] == ["LeaseExpired"], lost
    assert (late["phase"], late["error"]["type"]) == ("Failed", "DeadlineExceeded"), late
    assert [a["outcome"] for a in slow["attempts"]] == ["TimedOut"], slow
    assert final["dropped"]["phase"] == "Cancelled"
    assert "paused" in waiting["message"]
    assert runs(trace) == Counter({"ttl": 1, "slow": 1})


def test_the_api_server_frozen_across_a_lease_expiry(cluster, namespace, trace, operator_log):
    """SIGSTOP the API server for longer than a lease: a silent worker's lease expires in
    the freeze and is written after it; a healthy worker keeps its lease (heartbeats need
    no API server), finishes in the freeze, and its result is written once after it."""
    with OperatorProcess(cluster.env(), operator_log, namespaces=[namespace]) as operator:
        apply(cluster, namespace, fault_pool("demo", trace))
        wait_ready_workers(cluster, namespace, "demo", 1)
        silent = Api(operator.url, create_token(cluster, namespace))
        silent.register_when_pool_known("silent-1", {"lonely": {"type": "object"}})
        apply(
            cluster,
            namespace,
            job_manifest("lost", "lonely", {}, retry=ONCE),
            job_manifest("kept", "work", {"seconds": 6}, retry=ONCE),
        )
        assert [a.job.name for a in silent.claim("silent-1", wait=20)] == ["lost"]
        wait_phases(cluster, namespace, ["kept"], {"Running"}, timeout=30)
        with cluster.frozen_apiserver():
            time.sleep(20)  # > the 5 s lease; "kept" finishes its 6 s meanwhile
        final = wait_phases(cluster, namespace, ["lost", "kept"], {"Failed", "Succeeded"}, 90)
        silent.close()
    assert [a["outcome"] for a in final["lost"]["attempts"]] == ["LeaseExpired"]
    assert_ran_once(final["kept"])
    assert runs(trace) == Counter({"kept": 1})


# -- stopping work -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_a_stopping_sync_skill_keeps_its_slot_until_its_thread_returns(
    cluster, namespace, trace, operator_log, how
):
    """A sync skill that takes 3 s to notice it was told to stop: its worker (one slot)
    takes nothing else until the thread has returned, so nothing overlaps it, not even
    its own retry."""
    with OperatorProcess(cluster.env(), operator_log, namespaces=[namespace]):
        apply(cluster, namespace, fault_pool("demo", trace, concurrency=1))
        wait_ready_workers(cluster, namespace, "demo", 1)
        slow_stop = {"seconds": 300, "stop_after": 3}
        if how == "cancel":
            apply(cluster, namespace, job_manifest("stubborn", "spin", slow_stop))
            wait_phases(cluster, namespace, ["stubborn"], {"Running"}, timeout=30)
            apply(cluster, namespace, job_manifest("next", "spin", {"seconds": 0.5}))
            patch = '{"spec":{"cancel":true}}'
            cluster.kubectl("-n", namespace, "patch", "sbj/stubborn", "--type=merge", "-p", patch)
            final = wait_phases(
                cluster, namespace, ["stubborn", "next"], {"Cancelled", "Succeeded", "Failed"}, 60
            )
            assert final["stubborn"]["phase"] == "Cancelled"
            assert final["next"]["phase"] == "Succeeded"
            [stopped] = [e for e in events_of(trace, "stubborn") if e["event"] == "stopped"]
            [started] = [e for e in events_of(trace, "next") if e["event"] == "start"]
        else:
            retry = {"maxAttempts": 2, "backoff": {"initialDelaySeconds": 0, "maxDelaySeconds": 0}}
            apply(
                cluster,
                namespace,
                job_manifest("stubborn", "spin", slow_stop, timeoutSeconds=2, retry=retry),
            )
            final = wait_phases(cluster, namespace, ["stubborn"], {"Failed", "Succeeded"}, 90)
            outcomes = [a["outcome"] for a in final["stubborn"]["attempts"]]
            assert outcomes == ["TimedOut", "TimedOut"]
            trail = events_of(trace, "stubborn")
            [stopped] = [e for e in trail if e["event"] == "stopped" and e["attempt"] == 1]
            [started] = [e for e in trail if e["event"] == "start" and e["attempt"] == 2]
    # Nothing started on the worker before the stopping thread had returned.
    assert started["t"] >= stopped["t"], (stopped, started)


def test_a_rollout_under_busy_workers_consumes_no_attempt(cluster, namespace, trace, operator_log):
    with OperatorProcess(cluster.env(), operator_log, namespaces=[namespace]):
        apply(cluster, namespace, fault_pool("demo", trace, replicas=2, drainTimeoutSeconds=2))
        wait_ready_workers(cluster, namespace, "demo", 2)
        names = ["busy-0", "busy-1"]
        apply(
            cluster,
            namespace,
            *[job_manifest(n, "work", {"seconds": 20}, retry=ONCE) for n in names],
        )
        wait_phases(cluster, namespace, names, {"Running"}, timeout=30)
        rolled = fault_pool("demo", trace, replicas=2, drainTimeoutSeconds=2, env={"ROLL": "1"})
        apply(cluster, namespace, rolled)  # a new template: every pod is replaced
        final = wait_phases(cluster, namespace, names, {"Succeeded", "Failed"}, timeout=120)
    for status in final.values():
        assert status["phase"] == "Succeeded", status
        assert status["countedAttempts"] == 1, status  # only the attempt that succeeded
        outcomes = [a["outcome"] for a in status["attempts"]]
        assert set(outcomes[:-1]) <= {"Disrupted"} and outcomes[-1] == "Succeeded", outcomes
