"""Claims: a worker's long poll for attempts, and how a lost answer is replayed.

A claim is written to the Job before the worker hears of it.  If the answer is lost on
the wire, the worker retries with the same ``request_id`` and gets the same
assignments again (those still current); if it never comes back for them, its next
heartbeat carries them as ``assign`` (see ``reports.Reports.heartbeat``).  After a
restart or a hand-over, the attempts restored for a worker and not yet heard of go first
in its next claim, before new jobs fill its slots.  Either way a lost answer never costs
an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from shiftboss import metrics
from shiftboss.api.job import JobPhase
from shiftboss.jobs import machine
from shiftboss.jobs.book import JobBook
from shiftboss.jobs.params import ParamsValidator
from shiftboss.jobs.settings import DispatchSettings
from shiftboss.jobs.store import JobGone
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.jobs.transitions import Transitions
from shiftboss.workers.registry import WorkerInfo
from worker_runtime.protocol import Assignment, attempt_id

log = logging.getLogger("shiftboss.dispatcher")


class Claims:
    def __init__(
        self,
        book: JobBook,
        transitions: Transitions,
        settings: DispatchSettings,
        *,
        is_paused: Callable[[str, str], bool],
    ) -> None:
        self.book, self.transitions, self.settings = book, transitions, settings
        self.is_paused = is_paused
        self.params = ParamsValidator()
        #: Set when the operator stops: long polls answer at once, empty.
        self.closing = False

    async def claim(
        self,
        worker: WorkerInfo,
        max_attempts: int,
        wait_seconds: float,
        request_id: str | None = None,
    ) -> list[Assignment]:
        """Hand out up to ``max_attempts`` jobs, waiting up to ``wait_seconds`` for one."""
        if request_id is not None and worker.last_claim and worker.last_claim[0] == request_id:
            replayed = [a for key in worker.last_claim[1] if (a := self.held(worker, key))]
            if replayed:
                return replayed
        worker.claim_seq += 1
        seq = worker.claim_seq
        deadline = time.monotonic() + wait_seconds
        orphans = self._orphans(worker, max_attempts)
        if orphans:
            return orphans
        while True:
            # Listen before looking: a job queued while we look wakes the wait below.
            queued = self.book.wakeup(worker.pool_key)
            assignments: list[Assignment] = []
            while len(assignments) < max_attempts and self._may_claim(worker, seq):
                try:
                    got = await self._claim_some(worker, max_attempts - len(assignments))
                except Exception:
                    if not assignments:
                        raise
                    # Those already written are the worker's: hand them over, not lose them.
                    log.warning("claim for %s/%s stopped early", *worker.key, exc_info=True)
                    break
                if not got:
                    break
                assignments.extend(got)
            if assignments:
                if request_id is not None:
                    worker.last_claim = (request_id, [a.attempt_id for a in assignments])
                return assignments
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._may_claim(worker, seq):
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queued.wait(), remaining)

    def _orphans(self, worker: WorkerInfo, wanted: int) -> list[Assignment]:
        """Attempts an earlier operator (before a restart or a hand-over) wrote for this
        worker that it has not mentioned since: the claim answer that carried them may
        have died with that operator. They go first, before new jobs fill the worker's
        slots and leave no room to take them up (which would hand them back). A worker
        that already runs one ignores it (it takes up each attempt id once)."""
        found: list[Assignment] = []
        for lease in self.book.leases.held_by(worker.key):
            if len(found) >= wanted:
                break
            if lease.unconfirmed and (assignment := self.held(worker, lease.key)) is not None:
                lease.unconfirmed = False
                lease.granted = self.book.monotonic()  # a heartbeat's assign comes later
                found.append(assignment)
        return found

    def _may_claim(self, worker: WorkerInfo, seq: int) -> bool:
        # A newer claim of the same worker supersedes this one (its client gave up on it).
        return not (self.closing or worker.draining or worker.claim_seq != seq)

    async def _claim_some(self, worker: WorkerInfo, wanted: int) -> list[Assignment]:
        """Reserve up to ``wanted`` jobs and write their claims side by side (a worker
        with free slots in a burst gets them in one answer, at the latency of one write).
        Empty only when the queue has nothing the worker can take."""
        if self.is_paused(*worker.pool_key):
            return []
        queue = self.book.queues[worker.pool_key]
        while True:
            reserved: list[str] = []
            while len(reserved) < wanted and (uid := queue.best(worker.skills)) is not None:
                queue.discard(uid)  # reserved: no other claim can take it while we write
                if uid in self.book.jobs:
                    reserved.append(uid)
            if not reserved:
                return []
            results = await asyncio.gather(
                *(self._claim_reserved(worker, uid) for uid in reserved), return_exceptions=True
            )
            got = [r for r in results if isinstance(r, Assignment)]
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed and not got:
                raise failed[0]
            for error in failed:
                log.warning("a claim for %s/%s failed: %r", *worker.key, error)
            if got:
                return got

    async def _claim_reserved(self, worker: WorkerInfo, uid: str) -> Assignment | None:
        try:
            claimed = await self.transitions.decide(uid, self._decision(worker))
        except JobGone:
            return None
        except BaseException:
            # Not claimed after all (the API server failed us): put it back where it belongs.
            if (current := self.book.jobs.get(uid)) is not None:
                self.book.track(current)
            raise
        if claimed is not None and claimed.phase == JobPhase.RUNNING:
            return self.assignment(claimed)
        return None

    def _decision(
        self, worker: WorkerInfo
    ) -> Callable[[TrackedJob, datetime], machine.Event | None]:
        def decide(job: TrackedJob, now: datetime) -> machine.Event | None:
            if job.spec.cancel or job.spec.suspend or not machine.claimable(job.status, now):
                return None
            if self.book.follows_another(job):
                return None  # an earlier Job with its idempotencyKey runs instead
            schema = worker.skills[job.spec.skill].input_schema
            problem = self.params.check(schema, job.spec.params)
            if problem:
                return machine.ParamsRejected(problem, now)
            return machine.Claimed(worker.worker_id, now)

        return decide

    def held(self, worker: WorkerInfo, key: str) -> Assignment | None:
        """The assignment of attempt ``key`` if ``worker`` holds its lease and it may run."""
        lease = self.book.leases.get(key)
        if lease is None or lease.stop is not None:
            return None
        if not lease.belongs_to(worker.key, worker.pool_key):
            return None
        job = self.book.jobs.get(lease.uid)
        if job is None or job.phase != JobPhase.RUNNING or job.attempt != lease.attempt:
            return None
        return self.assignment(job, count=False)

    def assignment(self, job: TrackedJob, *, count: bool = True) -> Assignment:
        status = job.status
        assert status is not None and status.attempt_start_time is not None
        if count:
            if status.attempt == 1:
                latency = (status.attempt_start_time - job.created).total_seconds()
                metrics.QUEUE_DURATION.labels(*job.pool_key).observe(latency)
            metrics.JOBS_CLAIMED.labels(*job.pool_key).inc()
        return Assignment(
            attempt_id=attempt_id(job.uid, status.attempt),
            job=job.ref,
            attempt=status.attempt,
            skill=job.spec.skill,
            params=job.spec.params,
            deadline=machine.attempt_deadline(job.spec, status),
            lease_seconds=self.settings.lease_seconds,
        )
