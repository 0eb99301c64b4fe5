"""The read views (``/v1/queue``, ``/v1/pools/.../workers``) on an in-memory book and a
real registry: positions, reasons, busy slots, and every refusal of bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shiftboss.api.jobstatus import WaitReason
from shiftboss.api.workerpool import WorkerPool
from shiftboss.jobs.events import Blocked
from shiftboss.jobs.leases import Lease, LeaseTable
from shiftboss.jobs.queue import JobQueue
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.workerapi.problems import errors_middleware
from shiftboss.workerapi.views import READ_BURST, ReadViews, waiting_reason
from shiftboss.workers.registry import WorkerRegistry
from worker_runtime.protocol import MAX_REQUEST_BYTES, RegisterRequest, SkillSpec

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NS = "team-a"
POOL_UID = "11111111-2222-3333-4444-555555555555"


def uid(n: int) -> str:
    return f"00000000-0000-0000-0000-{n:012d}"


def tracked(n: int, skill: str = "add", priority: int = 5, **status: Any) -> TrackedJob:
    return TrackedJob.from_object(
        {
            "apiVersion": "shiftboss.io/v1alpha1",
            "kind": "Job",
            "metadata": {
                "name": f"job-{n}",
                "namespace": NS,
                "uid": uid(n),
                "resourceVersion": "1",
                "creationTimestamp": (T0 + timedelta(seconds=n)).isoformat(),
            },
            "spec": {"pool": "demo", "skill": skill, "params": {}, "priority": priority},
            **({"status": status} if status else {}),
        }
    )


@dataclass
class FakeBook:
    jobs: dict[str, TrackedJob] = field(default_factory=dict)
    queues: dict[tuple[str, str], JobQueue] = field(default_factory=dict)
    leases: LeaseTable = field(default_factory=LeaseTable)

    def queue(self, job: TrackedJob) -> None:
        self.jobs[job.uid] = job
        queue = self.queues.setdefault(job.pool_key, JobQueue())
        queue.push(job.uid, job.spec.skill, job.spec.priority, job.created, len(queue))


class Now:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def register(registry: WorkerRegistry, worker_id: str, skills: list[str], capacity: int = 2):
    request = RegisterRequest(
        pool="demo",
        worker_id=worker_id,
        skills=[SkillSpec(name=s) for s in skills],
        capacity=capacity,
        version="1.0",
        runtime="python",
    )
    return registry.register(NS, request, f"pod:{NS}/uid-{worker_id}")


def pools(paused: bool = False) -> dict[tuple[str, str], WorkerPool]:
    pool = WorkerPool.model_validate(
        {
            "metadata": {"name": "demo", "namespace": NS, "uid": POOL_UID},
            "spec": {"image": "x", "app": "a:w", "paused": paused},
        }
    )
    return {(NS, "demo"): pool}


def why_blocked(namespace: str, pool: str, skill: str, offered: bool) -> Blocked | None:
    if not offered:
        message = f"waiting for a worker of pool {pool} that offers skill {skill!r}"
        return Blocked(WaitReason.NO_WORKER_WITH_SKILL, message)
    return None


@pytest.fixture
def book() -> FakeBook:
    book = FakeBook()
    for n, priority in ((1, 1), (2, 9), (3, 5)):
        book.queue(tracked(n, priority=priority))
    return book


@pytest.fixture
def registry() -> WorkerRegistry:
    registry = WorkerRegistry(forget_after_seconds=60)
    register(registry, "demo-b", ["add", "sleep"])
    register(registry, "demo-a", ["sleep"], capacity=1)
    return registry


@pytest.fixture
def views(book: FakeBook, registry: WorkerRegistry) -> ReadViews:
    return ReadViews(book=book, workers=registry, pools=pools(), why_blocked=why_blocked)


def test_positions_follow_priority(views: ReadViews):
    seen = {n: views.queue_view(NS, uid(n)) for n in (1, 2, 3)}
    assert [seen[n].position for n in (2, 3, 1)] == [1, 2, 3]
    third = seen[1]
    assert (third.queued, third.offered_by, third.name, third.phase) == (3, 1, "job-1", "Pending")
    assert third.ahead is not None and third.ahead.higher_priority == 2
    assert third.reason == "2 job(s) ahead of it in pool demo's queue"
    assert seen[2].reason == "next in pool demo's queue: a worker is about to take it"
    dumped = seen[2].model_dump(mode="json")
    assert dumped["offeredBy"] == 1 and dumped["ahead"]["higherPriority"] == 0


def test_a_skill_nobody_offers_is_the_reason(views: ReadViews, book: FakeBook):
    book.queue(tracked(4, skill="resize", priority=10))
    view = views.queue_view(NS, uid(4))
    assert (view.position, view.offered_by) == (1, 0)
    assert view.reason is not None and "offers skill 'resize'" in view.reason
    assert view.wait_reason == "NoWorkerWithSkill"
    assert views.queue_view(NS, uid(1)).wait_reason is None


def test_every_worker_busy(views: ReadViews, book: FakeBook, registry: WorkerRegistry):
    for slot in range(2):
        book.leases.add(Lease(f"x.{slot}", f"x{slot}", 1, NS, "demo", "demo-b", 1e9, None, 0.0))
    assert views.queue_view(NS, uid(2)).reason == (
        "next in pool demo's queue: every worker offering skill 'add' is busy"
    )


def test_jobs_not_queued():
    running = tracked(5, phase="Running", attempt=1, worker="demo-b")
    assert waiting_reason(running, None, None, 0) is None
    done = tracked(6, phase="Succeeded")
    assert waiting_reason(done, None, None, 0) is None
    later = T0 + timedelta(minutes=5)
    retrying = tracked(7, phase="Retrying", nextAttemptAt=later.isoformat().replace("+00:00", "Z"))
    assert (
        waiting_reason(retrying, None, None, 0) == f"retrying: queued again at {later.isoformat()}"
    )


def test_unknown_job_and_another_namespace(views: ReadViews):
    from shiftboss.workerapi.problems import ApiProblem

    with pytest.raises(ApiProblem) as unknown:
        views.queue_view(NS, uid(99))
    assert unknown.value.status == 404
    with pytest.raises(ApiProblem):
        views.queue_view("team-b", uid(1))  # a uid of another namespace: no answer


def test_workers(views: ReadViews, book: FakeBook, registry: WorkerRegistry):
    views.clock = lambda: registry.in_pool(NS, "demo")[0].last_seen + 7.04
    book.leases.add(Lease("x.1", "x", 1, NS, "demo", "demo-b", 1e9, None, 0.0))
    view = views.workers_view(NS, POOL_UID)
    assert [w.id for w in view.workers] == ["demo-a", "demo-b"]
    b = view.workers[1]
    assert (b.skills, b.slots, b.busy, b.pod, b.draining) == (
        ["add", "sleep"],
        2,
        1,
        "demo-b",
        False,
    )
    assert view.workers[0].last_seen_seconds == 7.0
    assert (view.registered, view.slots, view.busy, view.truncated) == (2, 3, 1, False)


# -- over HTTP ---------------------------------------------------------------------------


@pytest.fixture
async def client(views: ReadViews) -> AsyncIterator[TestClient]:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[errors_middleware])
    views.add_routes(app.router)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def answer(response) -> tuple[int, dict[str, Any]]:
    return response.status, await response.json()


async def test_http_answers(client: TestClient):
    status, body = await answer(await client.get(f"/v1/queue/{NS}/{uid(3)}"))
    assert status == 200
    assert (body["position"], body["queued"], body["pool"]) == (2, 3, "demo")
    status, body = await answer(await client.get(f"/v1/pools/{NS}/{POOL_UID}/workers"))
    assert status == 200 and [w["id"] for w in body["workers"]] == ["demo-a", "demo-b"]
    assert "lastSeenSeconds" in body["workers"][0]


async def test_http_null_position_is_sent(client: TestClient, book: FakeBook):
    book.jobs[uid(8)] = tracked(8, phase="Running", attempt=1, worker="demo-b")
    status, body = await answer(await client.get(f"/v1/queue/{NS}/{uid(8)}"))
    assert status == 200 and body["position"] is None and body["reason"] is None


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        (f"/v1/queue/{NS}/job-1", 400, "invalid_uid"),
        (f"/v1/queue/{NS}/ABCDEF00-0000-0000-0000-000000000001", 400, "invalid_uid"),
        (f"/v1/queue/{NS}/{uid(99)}", 404, "unknown_job"),
        (f"/v1/queue/Team_A/{uid(1)}", 400, "invalid_namespace"),
        (f"/v1/queue/{'a' * 64}/{uid(1)}", 400, "invalid_namespace"),
        (f"/v1/queue/{NS}/{uid(1)}{'0' * 5000}", 400, "invalid_uid"),
        (f"/v1/pools/{NS}/demo/workers", 400, "invalid_uid"),
        (f"/v1/pools/{NS}/{uid(1)}/workers", 404, "unknown_pool"),
    ],
)
async def test_http_refusals(client: TestClient, path: str, status: int, code: str):
    got, body = await answer(await client.get(path))
    assert (got, body["error"]["code"]) == (status, code), body
    assert len(body["error"]["message"]) < 300  # an oversized path is not echoed back


async def test_http_rate_limited(client: TestClient, views: ReadViews):
    views.clock = lambda: 0.0  # no refill
    views.limiter._clock = views.clock
    statuses = [
        (await client.get(f"/v1/queue/{NS}/{uid(1)}")).status for _ in range(READ_BURST + 1)
    ]
    assert statuses[:-1] == [200] * READ_BURST and statuses[-1] == 429


def test_the_views_are_in_the_openapi_document():
    from shiftboss.protocol_doc import worker_api_document

    paths = worker_api_document()["paths"]
    queue = paths["/v1/queue/{namespace}/{uid}"]["get"]
    assert queue["operationId"] == "getQueuePosition" and queue["security"] == []
    assert queue["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/QueueView"
    )
    assert "/v1/pools/{namespace}/{uid}/workers" in paths
