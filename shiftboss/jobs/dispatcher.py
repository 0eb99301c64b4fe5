"""The dispatcher: the one object the worker API, the watch handlers and the pool
controller talk to about jobs.  It wires the parts, each in a module of its own:

* ``book``: the in-memory view (queues, leases, timers), rebuilt from the API server:
  ``observe`` is fed by the Jobs informer (a paginated list at start, then a watch);
* ``transitions``: the state machine applied, each result written (with the
  resourceVersion it was decided on) before anything acts on it;
* ``claims``: long polls, written claims, replay of lost answers;
* ``reports``: heartbeats, outcomes, hand-backs and progress from workers;
* ``timers``: leases, stops, deadlines, retries, blocked jobs and TTLs, from two
  timer heaps (a tick touches only what is due).

Every mutation of one job runs under that job's lock, so a worker's report, a lease
expiry and a cancellation never interleave; the resourceVersion precondition of every
write covers what the lock cannot (another operator, a user editing the spec).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shiftboss.api.common import utcnow
from shiftboss.jobs.book import JobBook
from shiftboss.jobs.claims import Claims
from shiftboss.jobs.errors import AttemptNotCurrent, JobBusy, ResultTooLarge, UnknownAttempt
from shiftboss.jobs.leases import LeaseTable
from shiftboss.jobs.reports import Reports
from shiftboss.jobs.settings import DispatchSettings
from shiftboss.jobs.store import JobStore
from shiftboss.jobs.timers import Timekeeper, WhyBlocked
from shiftboss.jobs.tracked import TrackedJob, run_annotation_problem
from shiftboss.jobs.transitions import Transitions
from shiftboss.kube.events import EventRecorder
from shiftboss.workers.registry import WorkerInfo
from worker_runtime.protocol import Assignment, Command, FailReport, ProgressReport

__all__ = [
    "AttemptNotCurrent",
    "DispatchSettings",
    "Dispatcher",
    "JobBusy",
    "ResultTooLarge",
    "UnknownAttempt",
]

log = logging.getLogger("shiftboss.dispatcher")


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        events: EventRecorder,
        settings: DispatchSettings,
        *,
        is_paused: Callable[[str, str], bool] = lambda namespace, pool: False,
        why_blocked: WhyBlocked = lambda job: None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        rng = rng or random.Random()
        self.settings = settings
        self.book = JobBook(
            restore_grace_seconds=settings.restore_grace,
            blocked_check_seconds=settings.blocked_check_seconds,
            aging_seconds_per_level=settings.aging_seconds_per_level,
            monotonic=monotonic,
        )
        self.transitions = Transitions(self.book, store, events, settings, clock)
        self.claims = Claims(self.book, self.transitions, settings, is_paused=is_paused)
        self.reports = Reports(self.book, self.transitions, self.claims, settings, clock, rng)
        self.timers = Timekeeper(
            self.book, self.transitions, settings, clock, rng, why_blocked=why_blocked
        )

    # -- what the API server says ------------------------------------------------------------

    def observe(self, obj: dict[str, Any], *, deleted: bool = False) -> None:
        """Take in a Job as listed or watched; idempotent, ignores stale versions."""
        uid = obj["metadata"]["uid"]
        if deleted:
            self._forget(uid)
            return
        known = self.book.jobs.get(uid)
        if known is not None and not known.older_than(obj["metadata"]["resourceVersion"]):
            return  # most often the echo of the operator's own write: not parsed again
        job = TrackedJob.from_object(obj)
        self.book.track(job)
        if (problem := run_annotation_problem(obj)) is not None:
            self.transitions.events.record(
                kind="Job",
                namespace=job.namespace,
                name=job.name,
                uid=uid,
                reason="InvalidAnnotation",
                message=problem,
                warning=True,
            )

    def _forget(self, uid: str) -> None:
        self.transitions.forget(uid)
        self.reports.forget(uid)
        self.timers.forget(uid)

    # -- the worker API ------------------------------------------------------------------------

    async def claim(
        self,
        worker: WorkerInfo,
        max_attempts: int,
        wait_seconds: float,
        request_id: str | None = None,
    ) -> list[Assignment]:
        return await self.claims.claim(worker, max_attempts, wait_seconds, request_id)

    def heartbeat(
        self, worker: WorkerInfo, attempt_ids: list[str], draining: bool
    ) -> list[Command]:
        return self.reports.heartbeat(worker, attempt_ids, draining)

    async def complete(self, worker: WorkerInfo, key: str, result: object) -> None:
        await self.reports.complete(worker, key, result)

    async def fail(self, worker: WorkerInfo, key: str, report: FailReport) -> None:
        await self.reports.fail(worker, key, report)

    async def release(self, worker: WorkerInfo, key: str, reason: str) -> None:
        await self.reports.release(worker, key, reason)

    async def progress(self, worker: WorkerInfo, key: str, report: ProgressReport) -> None:
        await self.reports.progress(worker, key, report)

    def lease_holder(self, namespace: str, key: str) -> str:
        return self.reports.lease_holder(namespace, key)

    # -- workers coming and going ------------------------------------------------------------

    def worker_disrupted(self, namespace: str, worker_id: str, why: str) -> None:
        """The worker's pod is being deleted (rollout, scale-down, eviction): attempts it
        loses from now on are disruptions, not counted against maxAttempts.  Leases it
        had already lost (its process crashed first) stay lost the way they were."""
        now = self.book.monotonic()
        for lease in self.book.leases.held_by((namespace, worker_id)):
            if lease.expires > now:
                lease.disrupted = lease.disrupted or why

    def worker_gone(self, namespace: str, worker_id: str) -> None:
        """The worker's pod ended: its attempts cannot finish, so end their leases now
        rather than waiting for them to run out."""
        for lease in self.book.leases.held_by((namespace, worker_id)):
            lease.expires = 0.0
            self.book.arm_lease(lease)

    def wake(self, namespace: str, pool: str) -> None:
        self.book.wake(namespace, pool)

    # -- running -------------------------------------------------------------------------------

    async def run_timers(self) -> None:
        await self.timers.run()

    def tick(self) -> None:
        self.timers.tick()

    def close(self) -> None:
        """Stop dispatching: answer every waiting claim now (empty) and every later one at
        once, and stop the timers (a replica that lost leadership must not write)."""
        self.claims.closing = True
        self.timers.stop()
        self.book.wake_all()

    @property
    def background(self) -> set[asyncio.Task[None]]:
        return self.timers.background

    # -- views for the pool controller, the App and tests ------------------------------------------

    @property
    def jobs(self) -> dict[str, TrackedJob]:
        return self.book.jobs

    @property
    def leases(self) -> LeaseTable:
        return self.book.leases

    @property
    def on_pool_change(self) -> Callable[[str, str], None]:
        return self.book.on_pool_change

    @on_pool_change.setter
    def on_pool_change(self, callback: Callable[[str, str], None]) -> None:
        self.book.on_pool_change = callback

    def queued_count(self, namespace: str, pool: str) -> int:
        return self.book.queued_count(namespace, pool)

    def running_count(self, namespace: str, pool: str) -> int:
        return self.book.running_count(namespace, pool)

    def busy_workers(self, namespace: str) -> set[str]:
        return self.book.busy_workers(namespace)
