"""The scrape-time gauges (queue depth and age, running attempts, workers by state) and
the queue's oldest-job index they read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shiftboss import metrics
from shiftboss.jobs.book import JobBook
from shiftboss.jobs.leases import Lease
from shiftboss.jobs.queue import JobQueue
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.workers.registry import WorkerRegistry
from worker_runtime.protocol import RegisterRequest, SkillSpec

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_oldest_job_is_the_first_created_still_queued():
    queue = JobQueue()
    assert queue.oldest_created() is None
    queue.push("b", "echo", 9, at(20), 1)  # priority does not matter, age does
    queue.push("a", "echo", 1, at(10), 2)
    queue.push("c", "other", 5, at(30), 3)
    assert queue.oldest_created() == at(10).timestamp()
    queue.discard("a")
    assert queue.oldest_created() == at(20).timestamp()
    queue.push("a", "echo", 1, at(10), 2)  # back again (a retry came due)
    assert queue.oldest_created() == at(10).timestamp()
    for uid in ("a", "b", "c"):
        queue.discard(uid)
    assert queue.oldest_created() is None


def test_the_age_index_stays_proportional_to_the_queue():
    queue = JobQueue()
    queue.push("keep", "echo", 5, at(0), 0)
    for i in range(10_000):  # jobs passing through, never at the head of the age index
        queue.push(f"j{i}", "echo", 5, at(1 + i), i + 1)
        queue.discard(f"j{i}")
    assert len(queue._ages) <= 2 * len(queue) + 1024
    assert queue.oldest_created() == at(0).timestamp()


def job(name: str, created: datetime, pool: str = "demo", **status: Any) -> TrackedJob:
    obj = {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "resourceVersion": "1",
            "creationTimestamp": created.isoformat().replace("+00:00", "Z"),
        },
        "spec": {"pool": pool, "skill": "echo", "params": {}},
        **({"status": status} if status else {}),
    }
    return TrackedJob.from_object(obj)


def register(registry: WorkerRegistry, worker_id: str, pool: str = "demo") -> None:
    skill = SkillSpec(name="echo", input_schema={"type": "object"})
    request = RegisterRequest(pool=pool, worker_id=worker_id, skills=[skill])
    registry.register("ns", request, f"pod:ns/{worker_id}")


def samples(name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in metrics.REGISTRY.collect()
        for s in family.samples
        if s.name == name
    }


def test_refresh_describes_each_pool_now():
    book = JobBook(restore_grace_seconds=30, blocked_check_seconds=5)
    registry = WorkerRegistry(forget_after_seconds=60)
    book.track(job("old", at(0)))
    book.track(job("new", at(40)))
    book.track(job("later", at(5), phase="Retrying", attempt=1, nextAttemptAt=at(90).isoformat()))
    book.leases.add(
        Lease("uid-x/1", "uid-x", 1, "ns", "demo", "w-busy", 1e9, None, 0.0)  # running
    )
    for worker_id in ("w-busy", "w-idle", "w-drain"):
        register(registry, worker_id)
    drained = registry.get("ns", "w-drain")
    assert drained is not None
    drained.draining = True
    register(registry, "w-other", pool="quiet")

    metrics.refresh(book, registry, at(100).timestamp())

    demo, quiet = (("namespace", "ns"), ("pool", "demo")), (("namespace", "ns"), ("pool", "quiet"))
    assert samples("shiftboss_queued_jobs") == {demo: 3.0, quiet: 0.0}  # retrying counts
    # Only jobs that could run now: the retrying one waits for its backoff.
    assert samples("shiftboss_queue_oldest_job_age_seconds") == {demo: 100.0, quiet: 0.0}
    assert samples("shiftboss_running_attempts") == {demo: 1.0, quiet: 0.0}
    workers = samples("shiftboss_workers")
    assert {labels[2][1]: value for labels, value in workers.items() if labels[1] == demo[1]} == {
        "busy": 1.0,
        "idle": 1.0,
        "draining": 1.0,
    }
    assert workers[(*quiet, ("state", "idle"))] == 1.0

    # The next scrape says what changed; a pool once seen stays (at zero) until a restart.
    book.forget("uid-old")
    registry.remove("ns", "w-other")
    metrics.refresh(book, registry, at(100).timestamp())
    assert samples("shiftboss_queue_oldest_job_age_seconds") == {demo: 60.0, quiet: 0.0}
    assert samples("shiftboss_workers")[(*quiet, ("state", "idle"))] == 0.0
