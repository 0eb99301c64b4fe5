"""Shards on the real control plane: two operators side by side, each serving its own
namespace with its own pool, and operators whose namespaces overlap a running shard's
refused (exit 2) with a message that says which shard and what to do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import apply, get, job_manifest, pool_manifest, wait_jobs_done, wait_ready_workers

from shiftboss.shards import ALL_NAMESPACES_HOME, ALL_NAMESPACES_LEASE, SHARD_LEASE
from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until

#: Short claims, so that a live one is seen renewed within a second (every 0.8 s).
SHARD_LEASE_SECONDS = 6
LEASES = "leases.coordination.k8s.io"


class Shards:
    """Operators started with ``--shard``; each is stopped (by its pid) at the end."""

    def __init__(self, cluster, logs: Path) -> None:
        self.cluster, self.logs = cluster, logs
        self.started: list[OperatorProcess] = []

    def start(self, shard: str, namespaces: list[str], *, wait: bool = True) -> OperatorProcess:
        operator = OperatorProcess(
            self.cluster.env(),
            self.logs / f"{shard}.log",
            namespaces=namespaces,
            extra_args=["--shard", shard, "--shard-lease-seconds", str(SHARD_LEASE_SECONDS)],
        )
        self.started.append(operator)
        return operator.start(wait=wait)

    def refused(self, shard: str, namespaces: list[str]) -> str:
        """Start an operator that must exit 2 within a few renewals; returns its log."""
        operator = self.start(shard, namespaces, wait=False)
        wait_until(
            lambda: not operator.process.running(),
            timeout=30,
            what=f"shard {shard} to refuse to run",
        )
        log = operator.process.log.read_text(errors="replace")
        assert operator.process.exit_code() == 2, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        return log

    def stop_all(self) -> None:
        for operator in self.started:
            operator.stop()


@pytest.fixture
def shards(cluster, tmp_path) -> Iterator[Shards]:
    started = Shards(cluster, tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def more_namespaces(cluster) -> Iterator[list[str]]:
    """Two more fresh namespaces, deleted afterwards."""
    names = [cluster.create_namespace(f"t-{uuid.uuid4().hex[:10]}") for _ in range(2)]
    yield names
    for name in names:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def claim_holder(cluster, namespace: str, name: str = SHARD_LEASE) -> str | None:
    result = cluster.kubectl("-n", namespace, "get", LEASES, name, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return get(cluster, namespace, LEASES, name)["spec"].get("holderIdentity")


def test_two_shards_serve_their_own_namespaces_and_an_overlapping_operator_is_refused(
    cluster, namespace, more_namespaces, shards
):
    a, (b, c) = namespace, more_namespaces
    alpha = shards.start("alpha", [a], wait=False)
    beta = shards.start("beta", [b], wait=False)
    alpha.wait_ready()
    beta.wait_ready()
    assert (claim_holder(cluster, a), claim_holder(cluster, b)) == ("alpha", "beta")

    for ns in (a, b):
        apply(cluster, ns, pool_manifest("demo", replicas=1, concurrency=2))
    for ns in (a, b):
        wait_ready_workers(cluster, ns, "demo", 1)
    jobs = [job_manifest(f"nap-{i}", "sleep", {"seconds": 0}) for i in range(4)]
    for ns in (a, b):
        apply(cluster, ns, *jobs)

    for ns, shard in ((a, alpha), (b, beta)):
        finished = wait_jobs_done(cluster, ns, len(jobs), timeout=60)
        pods = get(cluster, ns, "pods")["items"]
        # Each namespace's workers were made by its own shard and talk to it alone...
        urls = {
            env["value"]
            for pod in pods
            for env in pod["spec"]["containers"][0].get("env", [])
            if env["name"] == "SHIFTBOSS_OPERATOR_URL"
        }
        assert urls == {shard.url}, (ns, urls)
        # ... and every job ran once, on a worker of its own namespace's pool.
        names = {pod["metadata"]["name"] for pod in pods}
        for job in finished:
            status = job["status"]
            assert (status["phase"], status["attempt"]) == ("Succeeded", 1), status
            assert status["worker"] in names, (ns, status["worker"], names)

    # A third operator whose namespaces overlap beta's, and one serving all namespaces.
    log = shards.refused("gamma", [b, c])
    assert f"shard 'beta' serves {b} (its Lease {b}/shiftboss-shard was renewed" in log
    assert "--namespace sets that do not overlap" in log
    assert claim_holder(cluster, c) in (None, "")  # nothing of gamma's stays claimed

    log = shards.refused("everything", [])
    assert "this shard ('everything') would serve all namespaces" in log
    assert f"shard 'alpha' serves {a}" in log or f"shard 'beta' serves {b}" in log
    assert claim_holder(cluster, ALL_NAMESPACES_HOME, ALL_NAMESPACES_LEASE) in (None, "")

    # The refusals disturbed neither shard.
    assert alpha.process.running() and beta.process.running()
    assert (claim_holder(cluster, a), claim_holder(cluster, b)) == ("alpha", "beta")
    for shard in (alpha, beta):
        text = shard.process.log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
        assert "event loop: uvloop" in text

    # A clean stop releases the claims: a successor need not wait for them to expire.
    alpha.stop()
    assert alpha.process.exit_code() == 0, alpha.process.tail(400)
    assert claim_holder(cluster, a) in (None, "")


def test_a_namespaced_shard_is_refused_while_a_cluster_wide_one_runs(cluster, namespace, shards):
    # Operators that earlier tests of this session killed left claims behind (in
    # namespaces being deleted): gone, but a cluster-wide operator would watch each for
    # its whole duration before believing so.  Nothing else runs on this cluster now.
    cluster.kubectl(
        "delete", LEASES, "--all-namespaces", f"--field-selector=metadata.name={SHARD_LEASE}"
    )
    everything = shards.start("everything", [])
    assert claim_holder(cluster, ALL_NAMESPACES_HOME, ALL_NAMESPACES_LEASE) == "everything"

    log = shards.refused("alpha", [namespace])
    assert (
        f"shard 'everything' serves all namespaces (its Lease {ALL_NAMESPACES_HOME}/"
        f"{ALL_NAMESPACES_LEASE} was renewed" in log
    )
    assert "this shard ('alpha') would serve " + namespace in log
    assert claim_holder(cluster, namespace) in (None, "")  # released on the way out

    everything.stop()
    assert everything.process.exit_code() == 0, everything.process.tail(400)
    assert claim_holder(cluster, ALL_NAMESPACES_HOME, ALL_NAMESPACES_LEASE) in (None, "")
