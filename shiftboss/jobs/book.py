"""The operator's in-memory view of the Jobs it serves: where each one belongs.

``JobBook.track`` reads a Job's status (as listed, watched or just written) and puts
the job where it belongs: a pool's queue, the lease table, one of the timer tables, or
nowhere.  It does no I/O and is idempotent, so re-tracking every job (the periodic
resync) re-derives every timer from the API server's truth.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

from shiftboss.api.job import JobPhase, is_terminal
from shiftboss.jobs import machine
from shiftboss.jobs.leases import Lease, LeaseTable
from shiftboss.jobs.queue import JobQueue
from shiftboss.jobs.tracked import TrackedJob
from worker_runtime.protocol import attempt_id

PoolKey = tuple[str, str]  # (namespace, pool)


class JobBook:
    def __init__(
        self,
        *,
        restore_grace_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.restore_grace_seconds = restore_grace_seconds
        #: The clock of leases and timers (seconds; injected so tests can move it).
        self.monotonic = monotonic
        self.jobs: dict[str, TrackedJob] = {}
        self.queues: dict[PoolKey, JobQueue] = defaultdict(JobQueue)
        self.leases = LeaseTable()
        #: Retrying jobs waiting for ``nextAttemptAt``.
        self.retry_at: dict[str, datetime] = {}
        #: New jobs not yet written as Queued, with when they were first seen (monotonic).
        self.unwritten: dict[str, float] = {}
        #: Waiting jobs whose job deadline (activeDeadlineSeconds) can pass while they wait.
        self.deadline_at: dict[str, datetime] = {}
        #: Waiting jobs with ``spec.cancel``: their Cancelled status is still to be written.
        self.cancel_due: set[str] = set()
        #: Finished jobs with a TTL, and when they are to be deleted.
        self.expire_at: dict[str, datetime] = {}
        #: The order in which jobs were first seen: breaks ties of creationTimestamp.
        self._arrival: dict[str, int] = {}
        self._arrivals = itertools.count()
        #: Per pool, an event that waiting claims listen on; set (and replaced) on news.
        self._wakeups: dict[PoolKey, asyncio.Event] = {}
        #: Called with (namespace, pool) whenever a pool's queue or running set changes.
        self.on_pool_change: Callable[[str, str], None] = lambda namespace, pool: None

    # -- the view ------------------------------------------------------------------------

    def track(self, job: TrackedJob) -> None:
        """Put the job where its status says it belongs."""
        uid = job.uid
        self.jobs[uid] = job
        queue = self.queues[job.pool_key]
        for table in (self.retry_at, self.deadline_at, self.expire_at):
            table.pop(uid, None)
        self.cancel_due.discard(uid)
        phase, status = job.phase, job.status
        lease = self.leases.for_job(uid)
        if lease is not None and (phase != JobPhase.RUNNING or lease.attempt != job.attempt):
            self.leases.pop(lease.key)  # that attempt is over, whoever ended it
        if is_terminal(phase):
            queue.discard(uid)
            self.unwritten.pop(uid, None)
            ttl = job.spec.ttl_seconds_after_finished
            if ttl is not None and status is not None and status.completion_time:
                self.expire_at[uid] = status.completion_time + timedelta(seconds=ttl)
        elif phase == JobPhase.RUNNING:
            assert status is not None
            queue.discard(uid)
            self.unwritten.pop(uid, None)
            if self.leases.for_job(uid) is None:
                # Claimed by an earlier run of the operator (a restart, a hand-over): give
                # its worker time to reconnect before the lease can run out.
                now = self.monotonic()
                self.leases.add(
                    Lease(
                        key=attempt_id(uid, job.attempt),
                        uid=uid,
                        attempt=job.attempt,
                        namespace=job.namespace,
                        pool=job.spec.pool,
                        worker_id=status.worker or "",
                        expires=now + self.restore_grace_seconds,
                        deadline=machine.attempt_deadline(job.spec, status),
                        granted=float("-inf"),
                    )
                )
        elif job.spec.cancel:
            queue.discard(uid)
            self.cancel_due.add(uid)
        else:
            deadline = machine.active_deadline(job.spec, status)
            if deadline is not None:
                self.deadline_at[uid] = deadline
            if phase == JobPhase.RETRYING and status and status.next_attempt_at:
                queue.discard(uid)
                self.retry_at[uid] = status.next_attempt_at  # the timers enqueue it when due
            else:
                self.enqueue(job)
        self.on_pool_change(*job.pool_key)

    def enqueue(self, job: TrackedJob) -> None:
        arrival = self._arrival.setdefault(job.uid, next(self._arrivals))
        self.queues[job.pool_key].push(job.uid, job.spec.priority, job.created, arrival)
        if job.phase in (None, JobPhase.PENDING):
            self.unwritten.setdefault(job.uid, self.monotonic())
        self.wake(*job.pool_key)

    def forget(self, uid: str) -> TrackedJob | None:
        job = self.jobs.pop(uid, None)
        lease = self.leases.for_job(uid)
        if lease is not None:
            self.leases.pop(lease.key)
        for table in (self.retry_at, self.unwritten, self.deadline_at, self.expire_at):
            table.pop(uid, None)
        self.cancel_due.discard(uid)
        self._arrival.pop(uid, None)
        if job is not None:
            self.queues[job.pool_key].discard(uid)
            self.on_pool_change(*job.pool_key)
        return job

    # -- waking waiting claims ------------------------------------------------------------

    def wakeup(self, pool: PoolKey) -> asyncio.Event:
        """The event a claim of ``pool`` waits on; get it before looking at the queue."""
        return self._wakeups.setdefault(pool, asyncio.Event())

    def wake(self, namespace: str, pool: str) -> None:
        """Make the pool's waiting claims look again (a job was queued, the pool resumed)."""
        waiters = self._wakeups.pop((namespace, pool), None)
        if waiters is not None:
            waiters.set()

    def wake_all(self) -> None:
        for waiters in self._wakeups.values():
            waiters.set()
        self._wakeups.clear()

    # -- counts for pool status -------------------------------------------------------------

    def queued_count(self, namespace: str, pool: str) -> int:
        key = (namespace, pool)
        return len(self.queues[key]) + sum(
            1 for uid in self.retry_at if (j := self.jobs.get(uid)) and j.pool_key == key
        )

    def running_count(self, namespace: str, pool: str) -> int:
        return sum(1 for lease in self.leases if (lease.namespace, lease.pool) == (namespace, pool))

    def busy_workers(self, namespace: str) -> set[str]:
        return {lease.worker_id for lease in self.leases if lease.namespace == namespace}
