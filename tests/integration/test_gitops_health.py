"""GitOps tools reading real Shiftboss objects: the Argo CD health checks (Lua, as
delivered in the argocd-cm patch and read back from the API server) and kstatus's rules
on a WorkerPool and Jobs the operator runs; and the dashboard's gauges on its /metrics."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import httpx
import yaml
from conftest import apply, get, job_manifest, pool_manifest, wait_ready_workers
from fakeworker import wait_phase

from shiftboss.testing.processes import wait_until

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "gitops_checks", ROOT / "tests" / "unit" / "gitops" / "gitops_checks.py"
)
assert _spec is not None and _spec.loader is not None
gitops = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gitops)

POOLS, JOBS = "workerpools.shiftboss.io", "jobs.shiftboss.io"


def argocd_scripts(cluster, namespace: str) -> dict[str, str]:
    """Apply deploy/argocd's argocd-cm patch (into the test's namespace) and read the
    scripts back as Argo CD would find them in its ConfigMap."""
    patch = yaml.safe_load((ROOT / "deploy" / "argocd" / "argocd-cm-patch.yaml").read_text())
    patch["metadata"]["namespace"] = namespace
    apply(cluster, namespace, patch)
    data = get(cluster, namespace, "configmap", "argocd-cm")["data"]
    prefix = "resource.customizations.health.shiftboss.io_"
    return {key.removeprefix(prefix): source for key, source in data.items()}


def wait_health(cluster, namespace, scripts, kind: str, name: str, status: str) -> dict:
    """The object once Argo CD would call it ``status`` (or the last health seen)."""
    seen: list[tuple[str, str]] = []

    def reached() -> dict | None:
        obj = get(cluster, namespace, POOLS if kind == "WorkerPool" else JOBS, name)
        seen.append(gitops.health(kind, obj, scripts[kind]))
        return obj if seen[-1][0] == status else None

    try:
        return wait_until(reached, timeout=60, interval=0.3, what=f"{kind} {name}: {status}")
    except Exception as error:
        raise AssertionError(f"{kind} {name}: last health {seen[-1:]}") from error


def metric_samples(url: str, name: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        line.split("{", 1)[1].rsplit("}", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{")
    }


def test_argocd_and_kstatus_read_real_pools_and_jobs(cluster, namespace, operator):
    scripts = argocd_scripts(cluster, namespace)
    assert set(scripts) == {"WorkerPool", "Job"}

    apply(cluster, namespace, pool_manifest("demo", replicas=1))
    wait_ready_workers(cluster, namespace, "demo", 1)
    pool = wait_health(cluster, namespace, scripts, "WorkerPool", "demo", "Healthy")
    assert gitops.health("WorkerPool", pool, scripts["WorkerPool"]) == (
        "Healthy",
        "1/1 workers ready",
    )
    assert gitops.kstatus(pool) == "Current"
    assert pool["status"]["observedGeneration"] == pool["metadata"]["generation"]

    apply(
        cluster,
        namespace,
        job_manifest("sum", "add", {"a": 1, "b": 2}),
        job_manifest("boom", "explode", {"message": "no such image", "fatal": True}),
        job_manifest("slow", "sleep", {"seconds": 300}),
    )
    wait_phase(cluster, namespace, "sum", ("Succeeded",))
    wait_phase(cluster, namespace, "boom", ("Failed",))
    wait_phase(cluster, namespace, "slow", ("Running",))
    health = {
        name: gitops.health("Job", get(cluster, namespace, JOBS, name), scripts["Job"])
        for name in ("sum", "boom", "slow")
    }
    assert health["sum"] == ("Healthy", "succeeded on attempt 1")
    assert health["boom"][0] == "Degraded" and "no such image" in health["boom"][1]
    assert health["slow"][0] == "Progressing"
    assert health["slow"][1].startswith("Running: attempt 1 running on demo-"), health["slow"]

    # What the dashboard shows of this, on the operator's /metrics.
    where = f'namespace="{namespace}",pool="demo"'
    workers = metric_samples(operator.url, "shiftboss_workers")
    assert {labels: value for labels, value in workers.items() if where in labels} == {
        f'{where},state="idle"': 0.0,
        f'{where},state="busy"': 1.0,
        f'{where},state="draining"': 0.0,
    }
    assert metric_samples(operator.url, "shiftboss_running_attempts") == {where: 1.0}
    assert metric_samples(operator.url, "shiftboss_queued_jobs") == {where: 0.0}
    assert metric_samples(operator.url, "shiftboss_queue_oldest_job_age_seconds") == {where: 0.0}
    assert metric_samples(operator.url, "shiftboss_job_queue_duration_seconds_count") == {
        where: 3.0
    }

    # Paused: dispatch stops, the workers stay; Argo CD shows the pool Suspended.
    cluster.kubectl(
        "-n", namespace, "patch", f"{POOLS}/demo", "--type=merge", "-p", '{"spec":{"paused":true}}'
    )
    pool = wait_health(cluster, namespace, scripts, "WorkerPool", "demo", "Suspended")
    assert gitops.health("WorkerPool", pool, scripts["WorkerPool"])[1] == (
        "1/1 workers ready; dispatch paused"
    )
    assert gitops.kstatus(pool) == "Current"

    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        f"{JOBS}/slow",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"cancel": True}}),
    )
    wait_phase(cluster, namespace, "slow", ("Cancelled",), timeout=60)
    assert gitops.health("Job", get(cluster, namespace, JOBS, "slow"), scripts["Job"]) == (
        "Degraded",
        "cancelled by spec.cancel",
    )


def test_a_crash_looping_pool_is_degraded_and_stalled(cluster, namespace, operator):
    scripts = argocd_scripts(cluster, namespace)
    apply(cluster, namespace, pool_manifest("broken", replicas=1, app="no_such_module:worker"))
    pool = wait_health(cluster, namespace, scripts, "WorkerPool", "broken", "Degraded")
    _, message = gitops.health("WorkerPool", pool, scripts["WorkerPool"])
    assert message.startswith("WorkerCrashLoop: "), message
    assert gitops.kstatus(pool) == "Failed"
