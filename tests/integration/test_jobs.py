"""Jobs end to end: operator, worker pods on the process node, real API server."""

from __future__ import annotations

from conftest import apply, job_manifest, pool_manifest, wait_jobs_done, wait_ready_workers


def test_jobs_succeed_with_their_results(cluster, namespace, operator):
    apply(cluster, namespace, pool_manifest("demo", replicas=3))
    jobs = [job_manifest(f"add-{i}", "add", {"a": i, "b": 1}) for i in range(50)]
    apply(cluster, namespace, *jobs)
    items = wait_jobs_done(cluster, namespace, 50, timeout=180)
    by_name = {j["metadata"]["name"]: j["status"] for j in items}
    assert all(s["phase"] == "Succeeded" for s in by_name.values()), {
        n: s.get("message") for n, s in by_name.items() if s["phase"] != "Succeeded"
    }
    assert all(by_name[f"add-{i}"]["result"] == i + 1 for i in range(50))
    assert all(s["attempt"] == 1 for s in by_name.values())
    workers = {s["attempts"][0]["worker"] for s in by_name.values()}
    assert len(workers) >= 2  # spread over the pool
    wait_ready_workers(cluster, namespace, "demo", 3)
