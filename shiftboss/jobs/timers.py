"""Time-driven transitions: leases, stops, deadlines, retries, the Queued write, TTLs.

Each tick looks at what is due.  A due write stays due until it has landed (or the job
changed): a timeout, 5xx or 429 only postpones it, with backoff, so no transition is
lost to a failed write.  Every ``resync_seconds`` every tracked job is tracked again,
so every timer is re-derived from the job's status.  A tick that comes late (the event
loop stalled, or the process was stopped) extends every lease by the delay first: no
worker is blamed for heartbeats the operator could not hear.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime

import httpx

from shiftboss import metrics
from shiftboss.api.job import JobPhase
from shiftboss.jobs import machine
from shiftboss.jobs.book import JobBook
from shiftboss.jobs.leases import Lease, StopOrder
from shiftboss.jobs.settings import DispatchSettings
from shiftboss.jobs.store import JobGone
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.jobs.transitions import Decision, Transitions
from shiftboss.kube.client import ApiError

log = logging.getLogger("shiftboss.dispatcher")


class Timekeeper:
    def __init__(
        self,
        book: JobBook,
        transitions: Transitions,
        settings: DispatchSettings,
        clock: Callable[[], datetime],
        rng: random.Random,
        *,
        why_waiting: Callable[[str, str], str],
    ) -> None:
        self.book, self.transitions, self.settings = book, transitions, settings
        self.clock, self.rng, self.why_waiting = clock, rng, why_waiting
        #: Jobs with a timer-driven write (or deletion) in flight.
        self._inflight: set[str] = set()
        #: After a failed write: (failures so far, no new try before this monotonic time).
        self._backoff: dict[str, tuple[int, float]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._last_tick: float | None = None
        self._last_resync = self.book.monotonic()
        self.stopped = False

    async def run(self) -> None:
        while not self.stopped:
            try:
                self.tick()
            except Exception:
                log.exception("dispatcher tick failed; continuing")
            await asyncio.sleep(self.settings.tick_seconds)

    def stop(self) -> None:
        self.stopped = True

    def tick(self) -> None:
        if self.stopped:
            return
        now, mono = self.clock(), self.book.monotonic()
        self._forgive_stall(mono)
        for lease in self.book.leases:
            self._check_lease(lease, now, mono)
        for uid in list(self.book.cancel_due):
            self._write(uid, "cancellation", self._cancel)
        for uid, deadline in list(self.book.deadline_at.items()):
            if deadline <= now:
                self._write(uid, "deadline", self._deadline)
        for uid, due in list(self.book.retry_at.items()):
            if due <= now and (job := self.book.jobs.get(uid)) is not None:
                del self.book.retry_at[uid]
                self.book.enqueue(job)
        delay = self.settings.queued_write_delay_seconds
        for uid, since in list(self.book.unwritten.items()):
            if mono - since >= delay:
                self._write(uid, "Queued status", self._enqueued)
        for uid, when in list(self.book.expire_at.items()):
            if when <= now:
                self._delete(uid)
        if mono - self._last_resync >= self.settings.resync_seconds:
            self.resync()
        metrics.RUNNING_ATTEMPTS.set(len(self.book.leases))

    def _forgive_stall(self, mono: float) -> None:
        if self._last_tick is not None:
            late = mono - self._last_tick - self.settings.tick_seconds
            if late > self.settings.stall_threshold_seconds:
                log.warning(
                    "the operator was stalled for %.1fs: extending every lease by as much", late
                )
                self.book.leases.extend_all(late)
        self._last_tick = mono

    def resync(self) -> None:
        """Re-derive every timer from the jobs' statuses (skipping jobs being written)."""
        self._last_resync = self.book.monotonic()
        for uid, job in list(self.book.jobs.items()):
            if uid not in self._inflight and not self.transitions.locked(uid):
                self.book.track(job)

    # -- running attempts --------------------------------------------------------------------

    def _check_lease(self, lease: Lease, now: datetime, mono: float) -> None:
        job = self.book.jobs.get(lease.uid)
        if job is None:
            return
        if lease.stop is None:
            reason = machine.stop_reason(job.spec, job.status, now)
            if reason is not None:
                lease.stop = StopOrder(reason, mono + self.settings.fence_allowance)
                log.info(
                    "job %s/%s: %s; asking its worker to stop",
                    job.namespace,
                    job.name,
                    reason.message,
                )
        fence_due = lease.stop is not None and lease.stop.fence_at <= mono
        if fence_due or lease.expires <= mono:
            self._write(lease.uid, "end of an attempt", self._end_attempt(lease.key))

    def _end_attempt(self, key: str) -> Decision:
        jitter = self.rng.uniform(-1, 1)

        def decide(job: TrackedJob, now: datetime) -> machine.Event | None:
            lease = self.book.leases.get(key)
            if lease is None or job.phase != JobPhase.RUNNING or job.attempt != lease.attempt:
                return None
            mono = self.book.monotonic()
            if lease.stop is not None and (lease.stop.fence_at <= mono or lease.expires <= mono):
                return machine.fence_event(lease.stop.reason.kind, now, jitter)
            if lease.expires > mono:
                return None  # a heartbeat came meanwhile
            if lease.disrupted is not None:
                return machine.AttemptDisrupted(lease.disrupted, now, "PodDeleted")
            return machine.LeaseExpired(now, jitter)

        return decide

    # -- waiting jobs -------------------------------------------------------------------------

    def _cancel(self, job: TrackedJob, now: datetime) -> machine.Event | None:
        if not job.spec.cancel or job.phase == JobPhase.RUNNING:
            return None  # a running attempt is stopped through its lease
        return machine.CancelRequested(now)

    def _deadline(self, job: TrackedJob, now: datetime) -> machine.Event | None:
        deadline = machine.active_deadline(job.spec, job.status)
        if job.phase not in machine.WAITING or deadline is None or deadline > now:
            return None
        return machine.DeadlineExceeded(now)

    def _enqueued(self, job: TrackedJob, now: datetime) -> machine.Event | None:
        if (
            job.phase not in (None, JobPhase.PENDING)
            or job.uid not in self.book.queues[job.pool_key]
        ):
            return None
        return machine.Enqueued(now, self.why_waiting(*job.pool_key))

    # -- writing, with retries -------------------------------------------------------------------

    def _write(self, uid: str, what: str, decision: Decision) -> None:
        if not self._may_try(uid):
            return
        self._inflight.add(uid)
        self._spawn(self._write_now(uid, what, decision))

    async def _write_now(self, uid: str, what: str, decision: Decision) -> None:
        try:
            await self.transitions.decide(uid, decision)
            self._backoff.pop(uid, None)
        except JobGone:
            self._backoff.pop(uid, None)
        except Exception as exc:
            self._postpone(uid, what, exc)
        finally:
            self._inflight.discard(uid)

    def _delete(self, uid: str) -> None:
        job = self.book.jobs.get(uid)
        if job is None or not self._may_try(uid):
            return
        self._inflight.add(uid)
        self._spawn(self._delete_now(job))

    async def _delete_now(self, job: TrackedJob) -> None:
        try:
            await self.transitions.store.delete(job)
            self._backoff.pop(job.uid, None)
            self.book.expire_at.pop(job.uid, None)  # the watch will say it is gone
        except Exception as exc:
            self._postpone(job.uid, "deletion after its TTL", exc)
        finally:
            self._inflight.discard(job.uid)

    def _may_try(self, uid: str) -> bool:
        if uid in self._inflight:
            return False
        backoff = self._backoff.get(uid)
        return backoff is None or backoff[1] <= self.book.monotonic()

    def _postpone(self, uid: str, what: str, exc: BaseException) -> None:
        failures = self._backoff.get(uid, (0, 0.0))[0] + 1
        delay = min(
            self.settings.write_retry_max_seconds,
            self.settings.write_retry_initial_seconds * 2 ** (failures - 1),
        ) * self.rng.uniform(0.5, 1.0)
        self._backoff[uid] = (failures, self.book.monotonic() + delay)
        job = self.book.jobs.get(uid)
        name = f"{job.namespace}/{job.name}" if job else uid
        transient = isinstance(exc, httpx.HTTPError) or (
            isinstance(exc, ApiError) and (exc.status >= 500 or exc.status == 429)
        )
        log.log(
            logging.WARNING if transient else logging.ERROR,
            "%s of job %s failed (%s: %s); trying again in %.1fs",
            what,
            name,
            type(exc).__name__,
            exc,
            delay,
        )
        metrics.TIMER_WRITE_FAILURES.inc()

    def forget(self, uid: str) -> None:
        self._backoff.pop(uid, None)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def background(self) -> set[asyncio.Task[None]]:
        return self._background
