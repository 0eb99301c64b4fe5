"""Read endpoints computed from the operator's memory, so that a waiting job's place in
its pool's queue and the reason it waits cost no write per job per change:

* ``GET /v1/queue/{namespace}/{job_uid}``: the job's position, the jobs ahead of it (by
  why they are), how many workers offer its skill, and why it waits (``QueueView``);
* ``GET /v1/pools/{namespace}/{pool_uid}/workers``: the pool's registered workers, their
  skills and busy slots (``PoolWorkersView``).

Who may read them: anyone who knows the object's **UID**, and no token is asked for.
A UID is a random UUID that a caller learns only by reading the Job or WorkerPool
through the API server, which RBAC governs; a name would not do (names are guessable),
so the paths take UIDs only.  The answers carry only queue facts, the operator's reason
text and worker facts (ids, pods, skills, slots), never params, results or tokens.  A
token could not be checked anyway for the callers this is for: ``kubectl shiftboss``
users often hold a client certificate (which the operator cannot verify), and the API
server's service proxy, the way they reach the operator, strips ``Authorization``.

Bounded work: the position is O(jobs queued in that pool) and the worker list at most
``MAX_WORKERS_LISTED`` entries; every caller address has a token bucket (through the
service proxy, all callers share the API server's address).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from aiohttp import web
from pydantic import BaseModel

from shiftboss.api.common import DNS1123_LABEL, DNS1123_LABEL_MAX
from shiftboss.api.job import JobPhase, is_terminal
from shiftboss.api.workerpool import WorkerPool
from shiftboss.jobs.events import Blocked
from shiftboss.jobs.leases import Lease, PoolKey, WorkerKey
from shiftboss.jobs.queue import JobQueue
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.workerapi.problems import ApiProblem
from shiftboss.workerapi.view_models import (
    MAX_WORKERS_LISTED,
    UID_PATTERN,
    PoolWorkersView,
    QueueAhead,
    QueueView,
    WorkerView,
)
from shiftboss.workers.ratelimit import RateLimiter
from shiftboss.workers.registry import POD_OWNER_PREFIX, WorkerInfo

NAMESPACE = re.compile(DNS1123_LABEL)
UID = re.compile(UID_PATTERN)
#: Requests per caller address at once, then per second.
READ_BURST, READS_PER_SECOND, READ_CALLERS = 50, 20.0, 1024

#: why_blocked(namespace, pool, skill, offered): the operator's reason a job of the pool
#: for the skill cannot be dispatched now, or None (``PoolController.why_blocked``).
WhyBlocked = Callable[[str, str, str, bool], Blocked | None]


class Leases(Protocol):
    def held_by(self, worker: WorkerKey) -> list[Lease]: ...


class Book(Protocol):
    """What the views read of the dispatcher's book (``shiftboss.jobs.book.JobBook``)."""

    @property
    def jobs(self) -> Mapping[str, TrackedJob]: ...

    @property
    def queues(self) -> Mapping[PoolKey, JobQueue]: ...

    @property
    def leases(self) -> Leases: ...


class Workers(Protocol):
    """What the views read of ``shiftboss.workers.registry.WorkerRegistry``."""

    def in_pool(self, namespace: str, pool: str) -> list[WorkerInfo]: ...

    def offering(self, namespace: str, pool: str, skill: str) -> int: ...

    def may_run(self, namespace: str, pool: str, skill: str) -> bool: ...


def worker_view(worker: WorkerInfo, busy: int, now: float) -> WorkerView:
    pod = worker.worker_id if worker.owner.startswith(POD_OWNER_PREFIX) else None
    return WorkerView(
        id=worker.worker_id,
        pod=pod,
        skills=sorted(worker.skills),
        slots=worker.capacity,
        busy=busy,
        draining=worker.draining,
        last_seen_seconds=round(max(0.0, now - worker.last_seen), 1),
        version=worker.version,
        runtime=worker.runtime,
    )


def waiting_reason(
    job: TrackedJob,
    queue: JobQueue | None,
    blocked: str | None,
    free_slots: int,
) -> str | None:
    """Why ``job`` waits, in words; None when it does not (running, finished).
    ``blocked``: the operator's reason it cannot be dispatched at all, if any;
    ``free_slots``: idle slots of the pool's workers that offer its skill."""
    phase = job.phase or JobPhase.PENDING
    if is_terminal(phase) or phase == JobPhase.RUNNING:
        return None
    if job.spec.cancel:
        return "cancel requested: the operator is recording it as Cancelled"
    ahead = queue.ahead(job.uid) if queue is not None else None
    if ahead is None:
        status = job.status
        if phase == JobPhase.RETRYING and status is not None and status.next_attempt_at:
            return f"retrying: queued again at {status.next_attempt_at.isoformat()}"
        return (status.message if status is not None else None) or f"{phase}, not queued"
    if blocked is not None:
        return blocked
    pool = job.spec.pool
    if ahead.total:
        return f"{ahead.total} job(s) ahead of it in pool {pool}'s queue"
    if free_slots:
        return f"next in pool {pool}'s queue: a worker is about to take it"
    return f"next in pool {pool}'s queue: every worker offering skill {job.spec.skill!r} is busy"


class ReadViews:
    def __init__(
        self,
        *,
        book: Book,
        workers: Workers,
        pools: Mapping[PoolKey, WorkerPool],
        why_blocked: WhyBlocked,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.book, self.workers, self.pools = book, workers, pools
        self.why_blocked, self.clock = why_blocked, clock
        self.limiter = RateLimiter(
            burst=READ_BURST, per_second=READS_PER_SECOND, max_keys=READ_CALLERS, clock=clock
        )

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/queue/{namespace}/{uid}", self.queue)
        router.add_get("/v1/pools/{namespace}/{uid}/workers", self.pool_workers)

    # -- pure reads (the handlers below only parse and limit) ----------------------------------

    def queue_view(self, namespace: str, uid: str) -> QueueView:
        job = self.book.jobs.get(uid)
        if job is None or job.namespace != namespace:
            raise ApiProblem(
                404, "unknown_job", f"no Job of uid {uid} in namespace {namespace}", "uid"
            )
        pool, skill = job.spec.pool, job.spec.skill
        queue = self.book.queues.get(job.pool_key)
        ahead = queue.ahead(uid) if queue is not None else None
        offering = [w for w in self.workers.in_pool(namespace, pool) if skill in w.skills]
        free = sum(
            max(0, w.capacity - len(self.book.leases.held_by(w.key)))
            for w in offering
            if not w.draining
        )
        held = None
        if ahead is not None:
            offered = self.workers.may_run(namespace, pool, skill)
            held = self.why_blocked(namespace, pool, skill, offered)
        blocked = held.message if held is not None else None
        return QueueView(
            namespace=namespace,
            name=job.name,
            uid=uid,
            pool=pool,
            skill=skill,
            priority=job.spec.priority,
            phase=str(job.phase or JobPhase.PENDING),
            position=ahead.position if ahead is not None else None,
            queued=len(queue) if queue is not None else 0,
            ahead=QueueAhead(
                higher_priority=ahead.higher_priority,
                same_priority=ahead.same_priority,
                lower_priority=ahead.lower_priority,
            )
            if ahead is not None
            else None,
            reason=waiting_reason(job, queue, blocked, free),
            wait_reason=str(held.reason) if held is not None else None,
            offered_by=self.workers.offering(namespace, pool, skill),
        )

    def workers_view(self, namespace: str, uid: str) -> PoolWorkersView:
        name = next(
            (n for (ns, n), pool in self.pools.items() if ns == namespace and pool.uid == uid),
            None,
        )
        if name is None:
            raise ApiProblem(
                404, "unknown_pool", f"no WorkerPool of uid {uid} in namespace {namespace}", "uid"
            )
        now = self.clock()
        registered = self.workers.in_pool(namespace, name)
        views = [worker_view(w, len(self.book.leases.held_by(w.key)), now) for w in registered]
        return PoolWorkersView(
            namespace=namespace,
            pool=name,
            uid=uid,
            registered=len(views),
            slots=sum(v.slots for v in views),
            busy=sum(v.busy for v in views),
            workers=views[:MAX_WORKERS_LISTED],
            truncated=len(views) > MAX_WORKERS_LISTED,
        )

    # -- handlers ------------------------------------------------------------------------------

    async def queue(self, request: web.Request) -> web.Response:
        namespace, uid = self._checked(request, "Job")
        return _reply(self.queue_view(namespace, uid))

    async def pool_workers(self, request: web.Request) -> web.Response:
        namespace, uid = self._checked(request, "WorkerPool")
        return _reply(self.workers_view(namespace, uid))

    def _checked(self, request: web.Request, kind: str) -> tuple[str, str]:
        """The request's namespace and UID, if well-formed and the caller is within its rate."""
        wait = self.limiter.try_acquire(request.remote or "")
        if wait is not None:
            raise ApiProblem(
                429, "rate_limited", "too many reads from this address; retry", retry_after=wait
            )
        namespace, uid = request.match_info["namespace"], request.match_info["uid"]
        if len(namespace) > DNS1123_LABEL_MAX or not NAMESPACE.fullmatch(namespace):
            raise ApiProblem(
                400, "invalid_namespace", f"{namespace[:80]!r} is not a namespace name", "namespace"
            )
        if not UID.fullmatch(uid):
            raise ApiProblem(
                400,
                "invalid_uid",
                f"{uid[:80]!r} is not a UID: pass the {kind}'s metadata.uid "
                f"(kubectl get ... -o jsonpath='{{.metadata.uid}}'), not its name",
                "uid",
            )
        return namespace, uid


def _reply(model: BaseModel) -> web.Response:
    """The view with its nulls (``position: null`` says "not queued")."""
    return web.json_response(model.model_dump(mode="json"))
