"""Two operator replicas with --leader-elect: one serves, the other takes over when it stops."""

from __future__ import annotations

import time

import httpx
from conftest import apply, get, job_manifest, pool_manifest, wait_ready_workers

from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until


def serving(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_standby_replica_takes_over(cluster, namespace, tmp_path):
    env = cluster.env()
    args = ["--leader-elect", "--leader-elect-namespace", namespace]
    first = OperatorProcess(env, tmp_path / "first.log", namespaces=[namespace], extra_args=args)
    # The same address: a standby does not listen until it leads, as behind one Service.
    second = OperatorProcess(
        env, tmp_path / "second.log", namespaces=[namespace], extra_args=args, port=first.port
    )
    try:
        first.start()
        second.start(wait=False)
        apply(cluster, namespace, pool_manifest("demo", replicas=1))
        wait_ready_workers(cluster, namespace, "demo", 1)
        time.sleep(3)  # the standby keeps waiting while the leader renews
        assert second.process.running()
        assert "waiting to become the leader" in second.process.log.read_text()
        assert "became the leader" not in second.process.log.read_text()
        lease = get(cluster, namespace, "leases.coordination.k8s.io", "shiftboss-operator")
        assert lease["spec"]["holderIdentity"].endswith(f"-{first.process.pid}")

        first.stop()  # a clean stop hands the lease over at once
        stopped = time.monotonic()
        wait_until(lambda: serving(second.url), timeout=30, what="the standby to take over")
        assert time.monotonic() - stopped < 10  # not the 15 s of a lease running out
        assert "became the leader" in second.process.log.read_text()
        apply(cluster, namespace, job_manifest("after-failover", "add", {"a": 20, "b": 22}))

        def done():
            status = get(cluster, namespace, "jobs.shiftboss.io", "after-failover").get(
                "status", {}
            )
            return status if status.get("phase") == "Succeeded" else None

        assert wait_until(done, timeout=60, what="the job to succeed")["result"] == 42
    finally:
        first.stop()
        second.stop()
