"""The dispatcher: per-pool queues, claims, leases and reports.

It applies the pure state machine (``machine.transition``) and persists each result
through ``JobStore`` before acting on it: a claim is written to the Job before the
worker hears of it, an outcome is written once.  All in-memory state (queues, leases)
is rebuilt from the API server: ``observe`` is fed by a list at start and by the watch.

Every mutation of one job runs under that job's lock, so a worker's report, a lease
expiry and a cancellation never interleave; the resourceVersion precondition of every
write covers what the lock cannot (another operator, a user editing the spec).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shiftboss import metrics
from shiftboss.api.common import utcnow
from shiftboss.api.job import JobPhase, JobProgress, is_terminal
from shiftboss.jobs import machine
from shiftboss.jobs.params import ParamsValidator
from shiftboss.jobs.queue import JobQueue
from shiftboss.jobs.store import JobGone, JobStore, StaleJob
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.kube.events import EventRecorder
from shiftboss.workers.registry import WorkerInfo
from worker_runtime.protocol import (
    MAX_INLINE_RESULT_BYTES,
    Assignment,
    Command,
    CommandType,
    FailReport,
    ProgressReport,
    attempt_id,
    parse_attempt_id,
)

log = logging.getLogger("shiftboss.dispatcher")
#: A failed deletion of an expired job is tried again after this long (seconds).
TTL_RETRY_SECONDS = 5.0


class AttemptNotCurrent(Exception):
    """409: the attempt's lease expired, the job was cancelled, or it already finished."""


class UnknownAttempt(Exception):
    """404: no job has this attempt."""


class ResultTooLarge(Exception):
    """413: the result is over the inline limit; the attempt was failed."""


@dataclass(frozen=True)
class DispatchSettings:
    #: A running attempt's lease lasts this long after each heartbeat (seconds).
    lease_seconds: float = 15.0
    #: A waiting job's phase is written as Queued only if no worker took it within this time,
    #: so a job on a warm pool costs no Queued write.
    queued_write_delay_seconds: float = 2.0
    #: How often leases, timeouts, retries and TTLs are checked (seconds).
    tick_seconds: float = 0.25
    #: At most one progress write per job per this many seconds.
    progress_write_interval_seconds: float = 5.0


@dataclass
class Lease:
    uid: str
    attempt: int
    worker_id: str
    namespace: str
    expires: float  # time.monotonic()
    deadline: datetime | None


class Dispatcher:
    def __init__(
        self,
        store: JobStore,
        events: EventRecorder,
        settings: DispatchSettings,
        *,
        is_paused: Callable[[str, str], bool] = lambda namespace, pool: False,
        why_waiting: Callable[[str, str], str] = lambda namespace, pool: (
            f"waiting for a worker of pool {pool}"
        ),
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.store, self.events, self.settings = store, events, settings
        self.is_paused = is_paused
        #: The message of a job that waits: names a missing or paused pool.
        self.why_waiting = why_waiting
        self.clock = clock
        self.rng = rng or random.Random()
        self.params = ParamsValidator()
        self.jobs: dict[str, TrackedJob] = {}
        self.queues: dict[tuple[str, str], JobQueue] = defaultdict(JobQueue)
        self.leases: dict[str, Lease] = {}
        self._retry_at: dict[str, datetime] = {}
        self._waiting_since: dict[str, float] = {}
        self._expire_at: dict[str, datetime] = {}
        self._last_progress_write: dict[str, float] = {}
        #: The order in which jobs were first seen: breaks ties of creationTimestamp.
        self._arrival: dict[str, int] = {}
        self._arrivals = itertools.count()
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        #: Per pool, an event that claims wait on; set (and replaced) when a job is queued.
        self._wakeup: dict[tuple[str, str], asyncio.Event] = {}
        self._background: set[asyncio.Task[None]] = set()
        #: Set when the operator stops: long-polls answer at once instead of holding shutdown.
        self.closing = False
        #: Called with (namespace, pool) whenever a pool's queue or running set changes.
        self.on_pool_change: Callable[[str, str], None] = lambda namespace, pool: None

    # -- what the API server says -------------------------------------------------------

    def observe(self, obj: dict, *, deleted: bool = False) -> None:
        """Take in a Job as listed or watched; idempotent, ignores stale versions."""
        uid = obj["metadata"]["uid"]
        if deleted:
            self._forget(uid)
            return
        job = TrackedJob.from_object(obj)
        known = self.jobs.get(uid)
        if known and not job.newer_than(known):
            return
        self._track(job)

    def restore(self, jobs: list[TrackedJob]) -> None:
        """Take in the Jobs listed at start: the queues and leases are rebuilt from them."""
        for job in jobs:
            self._track(job)

    def _forget(self, uid: str) -> None:
        job = self.jobs.pop(uid, None)
        lock = self._locks.get(uid)
        if lock is not None and not lock.locked():
            del self._locks[uid]
        for key in [k for k, lease in self.leases.items() if lease.uid == uid]:
            del self.leases[key]
        for table in (
            self._retry_at,
            self._waiting_since,
            self._expire_at,
            self._last_progress_write,
            self._arrival,
        ):
            table.pop(uid, None)
        if job:
            self.queues[job.pool_key].discard(uid)
            self.on_pool_change(*job.pool_key)

    def _track(self, job: TrackedJob) -> None:
        """Put the job where its status says it belongs: queue, lease table, or nowhere."""
        uid = job.uid
        self.jobs[uid] = job
        queue = self.queues[job.pool_key]
        self._retry_at.pop(uid, None)
        phase = job.phase
        current_key = attempt_id(uid, job.attempt) if phase == JobPhase.RUNNING else None
        for key in [k for k, lease in self.leases.items() if lease.uid == uid and k != current_key]:
            del self.leases[key]  # that attempt is over, whoever ended it
        if is_terminal(phase):
            queue.discard(uid)
            self._waiting_since.pop(uid, None)
            if (
                job.spec.ttl_seconds_after_finished is not None
                and job.status
                and job.status.completion_time
            ):
                self._expire_at[uid] = job.status.completion_time + timedelta(
                    seconds=job.spec.ttl_seconds_after_finished
                )
        elif job.spec.cancel:
            queue.discard(uid)
            self._spawn(self._apply_by_uid(uid, lambda now: machine.CancelRequested(now)))
        elif phase == JobPhase.RUNNING:
            queue.discard(uid)
            key = attempt_id(uid, job.attempt)
            if key not in self.leases:
                # After a restart: give the worker one lease period to heartbeat again.
                self.leases[key] = Lease(
                    uid,
                    job.attempt,
                    job.status.worker or "",
                    job.namespace,
                    time.monotonic() + self.settings.lease_seconds,
                    machine.attempt_deadline(job.spec, job.status),
                )
        elif phase == JobPhase.RETRYING and not machine.claimable(job.status, self.clock()):
            queue.discard(uid)
            self._retry_at[uid] = job.status.next_attempt_at  # type: ignore[union-attr]
        else:
            self._enqueue(job)
        self.on_pool_change(*job.pool_key)

    def _enqueue(self, job: TrackedJob) -> None:
        arrival = self._arrival.setdefault(job.uid, next(self._arrivals))
        self.queues[job.pool_key].push(job.uid, job.spec.priority, job.created, arrival)
        if job.phase in (None, JobPhase.PENDING):
            self._waiting_since.setdefault(job.uid, time.monotonic())
        self.wake(*job.pool_key)

    def wake(self, namespace: str, pool: str) -> None:
        """Make the pool's waiting claims look again (a job was queued, the pool resumed)."""
        waiters = self._wakeup.pop((namespace, pool), None)
        if waiters:
            waiters.set()

    # -- worker API -------------------------------------------------------------------

    async def claim(
        self, worker: WorkerInfo, max_attempts: int, wait_seconds: float
    ) -> list[Assignment]:
        """Long-poll: hand out up to ``max_attempts`` jobs, waiting up to ``wait_seconds`` for one."""
        deadline = time.monotonic() + wait_seconds
        while True:
            # Listen before looking: a job queued while we look wakes the wait below.
            queued = self._wakeup.setdefault(worker.pool_key, asyncio.Event())
            assignments: list[Assignment] = []
            while len(assignments) < max_attempts and not worker.draining:
                try:
                    assignment = await self._claim_one(worker)
                except Exception:
                    if not assignments:
                        raise
                    # Those already written are the worker's: hand them over, not lose them.
                    log.warning("claim for %s/%s stopped early", *worker.key, exc_info=True)
                    return assignments
                if assignment is None:
                    break
                assignments.append(assignment)
            remaining = deadline - time.monotonic()
            if assignments or remaining <= 0 or worker.draining or self.closing:
                return assignments
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queued.wait(), remaining)

    async def _claim_one(self, worker: WorkerInfo) -> Assignment | None:
        if self.is_paused(*worker.pool_key):
            return None
        queue = self.queues[worker.pool_key]
        for uid in queue.ordered():
            job = self.jobs.get(uid)
            if job is None or job.spec.skill not in worker.skills:
                continue
            queue.discard(uid)  # reserved: no other claim can take it while we write
            try:
                async with self._locks[uid]:
                    claimed = await self._claim_job(uid, worker)
            except BaseException:
                # Not claimed after all (the API server failed us): put it back where it belongs.
                if (current := self.jobs.get(uid)) is not None:
                    self._track(current)
                raise
            if claimed is not None:
                return self._assignment(claimed)
        return None

    async def _claim_job(self, uid: str, worker: WorkerInfo) -> TrackedJob | None:
        """Write the claim of one job for ``worker``; None if it is not to be had."""
        job = self.jobs.get(uid)
        if job is None or job.spec.cancel or not machine.claimable(job.status, self.clock()):
            return None
        schema = worker.skills[job.spec.skill].input_schema
        problem = self.params.check(schema, job.spec.params)
        try:
            if problem:
                await self._apply(job, machine.ParamsRejected(problem, self.clock()))
                return None
            return await self._apply(job, machine.Claimed(worker.worker_id, self.clock()))
        except StaleJob:
            await self._reread(job)
        except JobGone:
            self._forget(uid)
        return None

    def _assignment(self, job: TrackedJob) -> Assignment:
        status = job.status
        assert status is not None and status.attempt_start_time is not None
        if status.attempt == 1:
            metrics.CLAIM_LATENCY.observe((status.attempt_start_time - job.created).total_seconds())
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

    def heartbeat(
        self, worker: WorkerInfo, attempt_ids: list[str], draining: bool
    ) -> list[Command]:
        worker.draining = draining
        commands: list[Command] = []
        renewed = time.monotonic() + self.settings.lease_seconds
        for key in attempt_ids:
            lease = self.leases.get(key)
            if lease is None or (lease.namespace, lease.worker_id) != worker.key:
                commands.append(
                    Command(
                        type=CommandType.abandon,
                        attempt_id=key,
                        reason="the attempt is no longer current",
                    )
                )
                continue
            lease.expires = renewed
            job = self.jobs.get(lease.uid)
            if job is not None and job.spec.cancel:
                commands.append(
                    Command(type=CommandType.cancel, attempt_id=key, reason="job cancelled")
                )
        return commands

    async def complete(self, worker: WorkerInfo, key: str, result: object) -> None:
        size = len(json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode())
        if size > MAX_INLINE_RESULT_BYTES:
            message = (
                f"result is {size} bytes, over the {MAX_INLINE_RESULT_BYTES}-byte limit for "
                "results stored in the Job's status; store large outputs as artifacts"
            )
            await self.fail(
                worker,
                key,
                FailReport(error_type="ResultTooLarge", message=message, retryable=False),
            )
            raise ResultTooLarge(message)
        await self._report(worker, key, lambda now: machine.Completed(result, now))

    async def fail(self, worker: WorkerInfo, key: str, report: FailReport) -> None:
        jitter = self.rng.uniform(-1, 1)
        await self._report(
            worker,
            key,
            lambda now: machine.AttemptFailed(
                report.error_type,
                report.message,
                report.retryable,
                now,
                report.retry_after_seconds,
                jitter,
            ),
        )

    async def progress(self, worker: WorkerInfo, key: str, report: ProgressReport) -> None:
        """Write progress at most once per interval, and never in an attempt's first
        interval: a short job's progress is not worth a write; its outcome is."""
        uid, job = self._current(worker, key)
        interval = self.settings.progress_write_interval_seconds
        started = job.status.attempt_start_time if job.status else None
        if started and (self.clock() - started).total_seconds() < interval:
            return
        if time.monotonic() - self._last_progress_write.get(uid, 0.0) < interval:
            return
        async with self._locks[uid]:
            uid, job = self._current(worker, key)
            status = job.status.model_copy(deep=True)  # type: ignore[union-attr]
            status.progress = JobProgress(
                percent=report.percent, message=report.message or None, updated_at=self.clock()
            )
            self._last_progress_write[uid] = time.monotonic()
            try:
                self._track(await self.store.write_status(job, status))
                metrics.STATUS_WRITES.labels("progress").inc()
            except StaleJob:
                await self._reread(job)
            except JobGone:
                self._forget(uid)

    def close(self) -> None:
        """Answer every waiting claim now (empty), and every later one at once."""
        self.closing = True
        for waiters in self._wakeup.values():
            waiters.set()
        self._wakeup.clear()

    def worker_gone(self, namespace: str, worker_id: str) -> None:
        """The worker's pod ended: its attempts cannot finish, so end their leases now
        rather than waiting for them to run out."""
        for lease in self.leases.values():
            if (lease.namespace, lease.worker_id) == (namespace, worker_id):
                lease.expires = 0.0

    def lease_holder(self, key: str) -> str:
        """The worker id holding attempt ``key``; raises when no one does."""
        lease = self.leases.get(key)
        if lease is None:
            self._current(None, key)  # raises the precise error
        return lease.worker_id  # type: ignore[union-attr]

    def _current(self, worker: WorkerInfo | None, key: str) -> tuple[str, TrackedJob]:
        try:
            uid, number = parse_attempt_id(key)
        except ValueError as exc:
            raise UnknownAttempt(str(exc)) from exc
        job = self.jobs.get(uid)
        if job is None:
            raise UnknownAttempt(f"no job has attempt {key!r}")
        lease = self.leases.get(key)
        if (
            lease is None
            or worker is None
            or (lease.namespace, lease.worker_id) != worker.key
            or job.phase != JobPhase.RUNNING
            or job.attempt != number
        ):
            raise AttemptNotCurrent(
                f"attempt {number} of job {job.namespace}/{job.name} is no longer current "
                f"(job is {job.phase}, attempt {job.attempt})"
            )
        return uid, job

    async def _report(self, worker: WorkerInfo, key: str, make_event) -> None:
        uid, _ = self._current(worker, key)
        async with self._locks[uid]:
            for _ in range(5):
                uid, job = self._current(worker, key)
                try:
                    if job.spec.cancel:  # seen since the attempt started: the cancel wins
                        await self._apply(job, machine.CancelRequested(self.clock()))
                        raise AttemptNotCurrent(f"job {job.namespace}/{job.name} was cancelled")
                    await self._apply(job, make_event(self.clock()))
                    return
                except StaleJob:
                    await self._reread(job)
                except JobGone as exc:
                    self._forget(uid)
                    raise AttemptNotCurrent(f"job {job.namespace}/{job.name} was deleted") from exc
                except machine.InvalidTransition as exc:
                    raise AttemptNotCurrent(str(exc)) from exc
            raise AttemptNotCurrent(f"job {job.namespace}/{job.name} keeps changing; try again")

    # -- applying transitions -------------------------------------------------------------

    async def _apply(self, job: TrackedJob, change: machine.Event) -> TrackedJob:
        """Persist one transition, then update queues, leases, Events and metrics from it."""
        status = machine.transition(job.spec, job.status, change)
        updated = await self.store.write_status(job, status)
        metrics.STATUS_WRITES.labels(type(change).__name__).inc()
        self._waiting_since.pop(job.uid, None)
        old_key = attempt_id(job.uid, job.attempt)
        if isinstance(change, machine.Claimed):
            self.leases[attempt_id(job.uid, status.attempt)] = Lease(
                job.uid,
                status.attempt,
                change.worker,
                job.namespace,
                time.monotonic() + self.settings.lease_seconds,
                machine.attempt_deadline(job.spec, status),
            )
        else:
            self.leases.pop(old_key, None)
        self._track(updated)
        self._notice(updated, change)
        return updated

    def _notice(self, job: TrackedJob, change: machine.Event) -> None:
        """Kubernetes Events and metrics for what a person must notice (not successes)."""
        status = job.status
        assert status is not None
        if is_terminal(status.phase):
            metrics.JOBS_FINISHED.labels(job.namespace, job.spec.pool, str(status.phase)).inc()
        if isinstance(change, machine.Claimed | machine.Completed | machine.Enqueued):
            return
        if isinstance(change, machine.CancelRequested):
            reason, warning = "Cancelled", False
        elif isinstance(change, machine.ParamsRejected):
            reason, warning = "InvalidParams", True
        elif isinstance(change, machine.DeadlineExceeded):
            reason, warning = "DeadlineExceeded", True
        else:
            last = status.attempts[-1] if status.attempts else None
            error_type = last.error_type if last and last.error_type else "Error"
            metrics.ATTEMPTS_FAILED.labels(job.namespace, job.spec.pool, error_type).inc()
            reason = "Retrying" if status.phase == JobPhase.RETRYING else "Failed"
            warning = True
        self.events.record(
            kind="Job",
            namespace=job.namespace,
            name=job.name,
            uid=job.uid,
            reason=reason,
            message=status.message or reason,
            warning=warning,
        )

    async def _apply_by_uid(self, uid: str, make_event) -> None:
        """Apply an operator-side event (cancel, lease expiry, timeout...) to a job by uid."""
        async with self._locks[uid]:
            for _ in range(5):
                job = self.jobs.get(uid)
                if job is None or is_terminal(job.phase):
                    return
                try:
                    await self._apply(job, make_event(self.clock()))
                    return
                except machine.InvalidTransition:
                    return
                except StaleJob:
                    await self._reread(job)
                except JobGone:
                    self._forget(uid)
                    return

    async def _reread(self, job: TrackedJob) -> None:
        metrics.WRITE_CONFLICTS.inc()
        try:
            fresh = await self.store.read(job.namespace, job.name)
        except JobGone:
            self._forget(job.uid)
            return
        self.jobs.pop(job.uid, None)  # accept the fresh copy whatever its version
        self._track(fresh)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- time-driven transitions ------------------------------------------------------------

    async def run_timers(self) -> None:
        """Leases, timeouts, deadlines, retry delays, the delayed Queued write, TTLs."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("dispatcher tick failed; continuing")
            await asyncio.sleep(self.settings.tick_seconds)

    async def tick(self) -> None:
        now, mono = self.clock(), time.monotonic()
        for key, lease in list(self.leases.items()):
            job = self.jobs.get(lease.uid)
            if job is None:
                continue
            deadline_passed = lease.deadline is not None and lease.deadline <= now
            if lease.expires <= mono or deadline_passed:
                self.leases.pop(key, None)
                self._spawn(self._expire(job, lease, lease.expires <= mono))
        for uid, due in list(self._retry_at.items()):
            job = self.jobs.get(uid)
            job_deadline = machine.active_deadline(job.spec, job.status) if job else None
            if job and job_deadline and job_deadline <= now:
                del self._retry_at[uid]
                self._spawn(self._apply_by_uid(uid, lambda t: machine.DeadlineExceeded(t)))
            elif due <= now:
                del self._retry_at[uid]
                if job:
                    self._enqueue(job)
        for uid, since in list(self._waiting_since.items()):
            if mono - since >= self.settings.queued_write_delay_seconds:
                del self._waiting_since[uid]
                job = self.jobs.get(uid)
                if (
                    job
                    and job.phase in (None, JobPhase.PENDING)
                    and uid in self.queues[job.pool_key]
                ):
                    message = self.why_waiting(*job.pool_key)
                    self._spawn(
                        self._apply_by_uid(uid, lambda t, m=message: machine.Enqueued(t, m))
                    )
        for uid, when in list(self._expire_at.items()):
            if when <= now:
                del self._expire_at[uid]
                job = self.jobs.get(uid)
                if job:
                    self._spawn(self._delete_expired(job))
        metrics.RUNNING_ATTEMPTS.set(len(self.leases))

    async def _delete_expired(self, job: TrackedJob) -> None:
        """Delete a finished job whose TTL is over; on failure, try again a little later."""
        try:
            await self.store.delete(job)
        except Exception as exc:
            log.warning(
                "could not delete expired job %s/%s, will retry: %s", job.namespace, job.name, exc
            )
            if job.uid in self.jobs:
                self._expire_at[job.uid] = self.clock() + timedelta(seconds=TTL_RETRY_SECONDS)

    async def _expire(self, job: TrackedJob, lease: Lease, lost: bool) -> None:
        jitter = self.rng.uniform(-1, 1)
        job_deadline = machine.active_deadline(job.spec, job.status)

        def event(now: datetime) -> machine.Event:
            if lost:
                return machine.LeaseExpired(now, jitter)
            if job_deadline and job_deadline <= now:
                return machine.DeadlineExceeded(now)
            return machine.TimedOut(now, jitter)

        async with self._locks[job.uid]:
            current = self.jobs.get(job.uid)
            if (
                current is None
                or current.phase != JobPhase.RUNNING
                or current.attempt != lease.attempt
            ):
                return
        await self._apply_by_uid(job.uid, event)

    # -- counts for pool status ----------------------------------------------------------------

    def queued_count(self, namespace: str, pool: str) -> int:
        return len(self.queues[(namespace, pool)]) + sum(
            1
            for uid in self._retry_at
            if (j := self.jobs.get(uid)) and j.pool_key == (namespace, pool)
        )

    def running_count(self, namespace: str, pool: str) -> int:
        return sum(
            1
            for lease in self.leases.values()
            if (j := self.jobs.get(lease.uid)) and j.pool_key == (namespace, pool)
        )

    def busy_workers(self, namespace: str) -> set[str]:
        return {lease.worker_id for lease in self.leases.values() if lease.namespace == namespace}
