"""What workers tell the operator about their attempts: heartbeats and reports.

A report is accepted only for the current attempt of a job of the worker's own pool
and namespace, from the worker holding its lease; anything else is refused (409, or
404 without naming anything outside the caller's namespace) and changes nothing.
A completion that arrives while the attempt is being stopped still wins: finished
work is never thrown away.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import datetime

from shiftboss import metrics
from shiftboss.api.job import JobPhase, JobProgress
from shiftboss.jobs import machine
from shiftboss.jobs.book import JobBook
from shiftboss.jobs.claims import Claims
from shiftboss.jobs.conditions import with_conditions
from shiftboss.jobs.errors import AttemptNotCurrent, ResultTooLarge, UnknownAttempt
from shiftboss.jobs.leases import Lease
from shiftboss.jobs.settings import DispatchSettings
from shiftboss.jobs.store import JobGone, StaleJob
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.jobs.transitions import Transitions
from shiftboss.workers.registry import WorkerInfo
from worker_runtime.protocol import (
    MAX_INLINE_RESULT_BYTES,
    Command,
    CommandType,
    FailReport,
    ProgressReport,
    parse_attempt_id,
)

#: Decides the event of a report from the job, its lease and the time.
ReportEvent = Callable[[TrackedJob, Lease, datetime], machine.Event]
#: Error types a worker reports for stops the operator also judges by itself.
_OWN_STOPS: dict[str, Callable[[datetime, float], machine.Event]] = {
    "LeaseExpired": lambda at, jitter: machine.LeaseExpired(at, jitter),
    "TimedOut": lambda at, jitter: machine.TimedOut(at, jitter),
}


class Reports:
    def __init__(
        self,
        book: JobBook,
        transitions: Transitions,
        claims: Claims,
        settings: DispatchSettings,
        clock: Callable[[], datetime],
        rng: random.Random,
    ) -> None:
        self.book, self.transitions, self.claims = book, transitions, claims
        self.settings, self.clock, self.rng = settings, clock, rng
        self._last_progress_write: dict[str, float] = {}

    # -- heartbeats ---------------------------------------------------------------------

    def heartbeat(
        self, worker: WorkerInfo, attempt_ids: list[str], draining: bool
    ) -> list[Command]:
        """Renew the listed attempts' leases; say which to cancel, abandon or take up."""
        worker.draining = draining
        now = self.book.monotonic()
        commands: list[Command] = []
        listed = dict.fromkeys(attempt_ids)  # in order, once each
        for key in listed:
            lease = self.book.leases.get(key)
            if lease is None or not lease.belongs_to(worker.key, worker.pool_key):
                reason = "the attempt is no longer current"
                commands.append(Command(type=CommandType.abandon, attempt_id=key, reason=reason))
                continue
            lease.expires = now + self.settings.lease_seconds
            lease.unconfirmed = False
            if lease.stop is not None:
                commands.append(
                    Command(
                        type=CommandType.cancel,
                        attempt_id=key,
                        reason=lease.stop.reason.message,
                        grace_seconds=self.settings.cancel_grace_seconds,
                    )
                )
        for lease in self.book.leases.held_by(worker.key):
            if lease.key in listed or now - lease.granted < self.settings.assign_after_seconds:
                continue
            assignment = self.claims.held(worker, lease.key)
            if assignment is not None:  # a claim answer the worker never got
                commands.append(
                    Command(type=CommandType.assign, attempt_id=lease.key, assignment=assignment)
                )
        return commands

    # -- outcomes -------------------------------------------------------------------------

    async def complete(self, worker: WorkerInfo, key: str, result: object) -> None:
        size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_INLINE_RESULT_BYTES:
            message = (
                f"result is {size} bytes, over the {MAX_INLINE_RESULT_BYTES}-byte limit for "
                "results stored in the Job's status; store large outputs as artifacts"
            )
            report = FailReport(error_type="ResultTooLarge", message=message, retryable=False)
            await self.fail(worker, key, report)
            raise ResultTooLarge(message)
        # A completion wins over a stop that was decided but not yet written.
        await self._report(worker, key, lambda job, lease, now: machine.Completed(result, now))

    async def fail(self, worker: WorkerInfo, key: str, report: FailReport) -> None:
        jitter = self.rng.uniform(-1, 1)

        def event(job: TrackedJob, lease: Lease, now: datetime) -> machine.Event:
            stop = self._stop_kind(job, lease, now)
            if stop is not None:  # it failed because it was told to stop: record why
                return machine.fence_event(stop, now, jitter)
            if report.error_type in _OWN_STOPS:
                return _OWN_STOPS[report.error_type](now, jitter)
            return machine.AttemptFailed(
                report.error_type,
                report.message,
                report.retryable,
                now,
                report.retry_after_seconds,
                jitter,
            )

        await self._report(worker, key, event)

    async def release(self, worker: WorkerInfo, key: str, reason: str) -> None:
        """The worker gives the attempt back: queued again at once, not counted."""
        jitter = self.rng.uniform(-1, 1)

        def event(job: TrackedJob, lease: Lease, now: datetime) -> machine.Event:
            stop = self._stop_kind(job, lease, now)
            if stop is not None:
                return machine.fence_event(stop, now, jitter)
            why = reason or f"handed back by worker {worker.worker_id}"
            return machine.AttemptDisrupted(why, now, "HandedBack")

        await self._report(worker, key, event)

    def _stop_kind(self, job: TrackedJob, lease: Lease, now: datetime) -> machine.StopKind | None:
        if lease.stop is not None:
            return lease.stop.reason.kind
        reason = machine.stop_reason(job.spec, job.status, now)
        return reason.kind if reason is not None else None

    async def _report(self, worker: WorkerInfo, key: str, make_event: ReportEvent) -> None:
        uid, _, _ = self.current(worker, key)

        def decide(job: TrackedJob, now: datetime) -> machine.Event:
            _, _, lease = self.current(worker, key)  # again, on the freshest copy
            return make_event(job, lease, now)

        try:
            await self.transitions.decide(uid, decide)
        except JobGone as exc:
            raise AttemptNotCurrent(
                f"attempt {key!r} is no longer current: its job was deleted"
            ) from exc
        except machine.InvalidTransition as exc:
            raise AttemptNotCurrent(f"attempt {key!r} is no longer current: {exc}") from exc

    # -- progress -------------------------------------------------------------------------

    async def progress(self, worker: WorkerInfo, key: str, report: ProgressReport) -> None:
        """Write progress at most once per interval, and never in an attempt's first
        interval: a short job's progress is not worth a write; its outcome is."""
        uid, job, _ = self.current(worker, key)
        interval = self.settings.progress_write_interval_seconds
        started = job.status.attempt_start_time if job.status else None
        if started and (self.clock() - started).total_seconds() < interval:
            return
        if self.book.monotonic() - self._last_progress_write.get(uid, 0.0) < interval:
            return
        async with self.transitions.lock(uid):
            uid, job, _ = self.current(worker, key)
            assert job.status is not None
            status = job.status.model_copy(deep=True)
            now = self.clock()
            status.progress = JobProgress(
                percent=report.percent, message=report.message or None, updated_at=now
            )
            with_conditions(status, now, job.generation)  # the generation this write saw
            self._last_progress_write[uid] = self.book.monotonic()
            try:
                self.transitions.track_answer(
                    await self.transitions.store.write_status(job, status)
                )
                metrics.STATUS_WRITES.labels("Progress").inc()
            except StaleJob:  # progress is advisory: the next report brings it
                await self.transitions.reread(job)
            except JobGone:
                self.transitions.forget(uid)

    def forget(self, uid: str) -> None:
        self._last_progress_write.pop(uid, None)

    # -- who holds what ---------------------------------------------------------------------

    def current(self, worker: WorkerInfo, key: str) -> tuple[str, TrackedJob, Lease]:
        """The job and lease of attempt ``key`` if ``worker`` may report on it."""
        try:
            uid, number = parse_attempt_id(key)
        except ValueError as exc:
            raise UnknownAttempt(str(exc)) from exc
        job = self.book.jobs.get(uid)
        if job is None or job.namespace != worker.namespace:
            raise UnknownAttempt(f"no job in namespace {worker.namespace} has attempt {key!r}")
        lease = self.book.leases.get(key)
        if (
            lease is None
            or not lease.belongs_to(worker.key, worker.pool_key)
            or job.phase != JobPhase.RUNNING
            or job.attempt != number
        ):
            raise AttemptNotCurrent(
                f"attempt {number} of job {job.namespace}/{job.name} is no longer current "
                f"(job is {job.phase}, attempt {job.attempt})"
            )
        return uid, job, lease

    def lease_holder(self, namespace: str, key: str) -> str:
        """The worker id holding attempt ``key`` of a job in ``namespace``."""
        try:
            uid, _ = parse_attempt_id(key)
        except ValueError as exc:
            raise UnknownAttempt(str(exc)) from exc
        job = self.book.jobs.get(uid)
        if job is None or job.namespace != namespace:
            raise UnknownAttempt(f"no job in namespace {namespace} has attempt {key!r}")
        lease = self.book.leases.get(key)
        if lease is None:
            raise AttemptNotCurrent(
                f"attempt {key!r} of job {job.namespace}/{job.name} is no longer current "
                f"(job is {job.phase}, attempt {job.attempt})"
            )
        return lease.worker_id
