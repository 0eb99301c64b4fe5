"""The operator killed and kept away for two minutes while long jobs run (in a file of
its own, so that this long test runs beside the other fault tests)."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from conftest import apply, job_manifest, wait_ready_workers
from traced import ONCE, assert_ran_once, clean_log, fault_pool, runs, wait_phases

from shiftboss.testing.operator import OperatorProcess

pytestmark = pytest.mark.usefixtures("local_cluster_only")


def test_the_operator_killed_and_away_for_two_minutes_loses_nothing(
    cluster, namespace, trace, operator_log, tmp_path
):
    """60 s jobs, one attempt each, the operator SIGKILLed mid-run and kept away for 2
    minutes (longer than the lease, the restore grace and the old 30 s report budget):
    every worker keeps its attempt, delivers its result when the operator is back, and
    every job ends Succeeded having run exactly once."""
    first = OperatorProcess(cluster.env(), operator_log, namespaces=[namespace]).start()
    try:
        apply(cluster, namespace, fault_pool("demo", trace, replicas=2, concurrency=2))
        wait_ready_workers(cluster, namespace, "demo", 2)
        names = [f"long-{i}" for i in range(4)]
        apply(
            cluster,
            namespace,
            *[job_manifest(n, "work", {"seconds": 60}, retry=ONCE) for n in names],
        )
        wait_phases(cluster, namespace, names, {"Running"}, timeout=60)
    finally:
        first.kill()
    time.sleep(120)  # the outage itself; every job finishes its 60 s meanwhile
    assert all(runs(trace)[n] == 1 for n in names)
    second = OperatorProcess(
        cluster.env(), tmp_path / "operator-2.log", namespaces=[namespace], port=first.port
    )
    with second:
        statuses = wait_phases(cluster, namespace, names, {"Succeeded", "Failed"}, timeout=90)
    clean_log(tmp_path / "operator-2.log")
    for status in statuses.values():
        assert_ran_once(status)
    assert runs(trace) == Counter(dict.fromkeys(names, 1))
