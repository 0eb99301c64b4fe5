"""Time-driven transitions: leases, stops, deadlines, retries, blocked jobs, TTLs.

Each tick takes only the timers that are due (``JobBook.due``) and acts on each.  A
due write stays due until it has landed (or the job changed): a timeout, 5xx or 429
only postpones it, with backoff, by arming its timer again, so no transition is lost
to a failed write.  A slice of the tracked jobs is tracked again every tick, so every
timer is re-derived from the job's status once per ``resync_seconds``.  A tick that
comes late (the event loop stalled, or the process was stopped) extends every lease by
the delay first: no worker is blamed for heartbeats the operator could not hear.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import Any

import httpx

from shiftboss import metrics
from shiftboss.api.job import JobConditionType, JobPhase
from shiftboss.api.jobstatus import WaitReason
from shiftboss.jobs import directives, machine
from shiftboss.jobs.book import Alarm, AlarmKey, JobBook
from shiftboss.jobs.directives import Directive
from shiftboss.jobs.events import Blocked
from shiftboss.jobs.leases import StopOrder
from shiftboss.jobs.settings import DispatchSettings
from shiftboss.jobs.store import JobGone
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.jobs.transitions import Decision, Transitions
from shiftboss.kube.client import ApiError
from shiftboss.workers.ratelimit import RateLimiter

log = logging.getLogger("shiftboss.dispatcher")

#: Says why a waiting job cannot be dispatched now (no pool, paused, no worker offers its
#: skill), or None when a worker could take it: then it just waits its turn, unwritten.
WhyBlocked = Callable[[TrackedJob], Blocked | None]


class Timekeeper:
    def __init__(
        self,
        book: JobBook,
        transitions: Transitions,
        settings: DispatchSettings,
        clock: Callable[[], datetime],
        rng: random.Random,
        *,
        why_blocked: WhyBlocked,
    ) -> None:
        self.book, self.transitions, self.settings = book, transitions, settings
        self.clock, self.rng, self.why_blocked = clock, rng, why_blocked
        #: Jobs with a timer-driven write (or deletion) in flight.
        self._inflight: set[str] = set()
        #: After a failed write: (failures so far, no new try before this monotonic time).
        self._backoff: dict[str, tuple[int, float]] = {}
        #: Blocked jobs' Queued writes share this budget: a backlog never becomes a burst.
        self._queued_writes = RateLimiter(
            burst=settings.queued_writes_burst,
            per_second=settings.queued_writes_per_second,
            max_keys=1,
            clock=book.monotonic,
        )
        self._background: set[asyncio.Task[None]] = set()
        self._last_tick: float | None = None
        self._resync_pending: list[str] = []
        self._resync_started = self.book.monotonic()
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
        for alarm, key in self.book.due(now):
            self._fire(alarm, key, now)
        for uid, directive in list(self.book.directives.items()):
            if directive is Directive.MIRROR:
                self._mirror(uid)
            else:
                self._write(uid, directive.value, partial(directives.decision, directive), None)
        self._resync_some(mono)

    def _forgive_stall(self, mono: float) -> None:
        if self._last_tick is not None:
            late = mono - self._last_tick - self.settings.tick_seconds
            if late > self.settings.stall_threshold_seconds:
                log.warning(
                    "the operator was stalled for %.1fs: extending every lease by as much", late
                )
                self.book.leases.extend_all(late)
        self._last_tick = mono

    def _resync_some(self, mono: float) -> None:
        """Spread the resync over ticks: a sweep takes half of ``resync_seconds``."""
        if not self._resync_pending:
            if mono - self._resync_started < self.settings.resync_seconds:
                return
            self._resync_pending = list(self.book.jobs)
            self._resync_started = mono
        ticks = max(1.0, self.settings.resync_seconds / 2 / self.settings.tick_seconds)
        self._retrack(math.ceil(len(self.book.jobs) / ticks))

    def _retrack(self, count: int) -> None:
        pending = self._resync_pending
        for _ in range(min(count, len(pending))):
            uid = pending.pop()
            job = self.book.jobs.get(uid)
            if job is not None and uid not in self._inflight and not self.transitions.locked(uid):
                self.book.track(job)

    # -- what a timer means -----------------------------------------------------------------

    def _fire(self, alarm: Alarm, key: str, now: datetime) -> None:
        if alarm is Alarm.LEASE:
            self._check_lease(key)
        elif alarm is Alarm.STOP:
            self._order_stop(key, now)
        elif alarm is Alarm.RETRY:
            self.book.retry_due(key)
        elif alarm is Alarm.DEADLINE:
            self._write(key, "deadline", self._deadline, (alarm, key))
        elif alarm is Alarm.EXPIRE:
            self._delete(key)
        elif alarm is Alarm.BLOCKED:
            self._check_blocked(key)

    def _check_lease(self, key: str) -> None:
        lease = self.book.leases.get(key)
        if lease is None:
            return
        mono = self.book.monotonic()
        fence_due = lease.stop is not None and lease.stop.fence_at <= mono
        if fence_due or lease.expires <= mono:
            self._write(lease.uid, "end of an attempt", self._end_attempt(key), (Alarm.LEASE, key))
        else:
            self.book.arm_lease(lease)  # renewed since it was armed

    def _order_stop(self, uid: str, now: datetime) -> None:
        job, lease = self.book.jobs.get(uid), self.book.leases.for_job(uid)
        if job is None or lease is None or lease.stop is not None:
            return
        reason = machine.stop_reason(job.spec, job.status, now)
        if reason is None:
            if lease.deadline is not None and lease.deadline > now:  # armed early: again
                self.book.wall_timers.arm((Alarm.STOP, uid), lease.deadline.timestamp())
            return
        lease.stop = StopOrder(reason, self.book.monotonic() + self.settings.fence_allowance)
        self.book.arm_lease(lease)
        log.info(
            "job %s/%s: %s; asking its worker to stop", job.namespace, job.name, reason.message
        )

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

    def _mirror(self, uid: str) -> None:
        """Follow (start, switch, end or stop following) the earlier Job with the same
        idempotencyKey; ending needs its result, read afresh."""
        if self._wait_before_trying(uid) is not None:
            return  # the directive stays due: the next tick tries again
        job = self.book.jobs.get(uid)
        if job is None:
            return
        self._inflight.add(uid)
        self._spawn(self._mirror_now(job))

    async def _mirror_now(self, job: TrackedJob) -> None:
        target = self.book.mirror_target(job)
        result = None
        try:
            if target is not None and target.phase == JobPhase.SUCCEEDED:
                fresh = await self.transitions.store.read(target.namespace, target.name)
                result = fresh.status.result if fresh.status else None
        except Exception as exc:
            self._postpone(job.uid, "reading the Job it mirrors", exc)
            self._inflight.discard(job.uid)
            return

        seen = _identity(target)

        def decide(current: TrackedJob, now: datetime) -> machine.Event | None:
            if _identity(self.book.mirror_target(current)) != seen:
                return None  # the keyed Jobs changed meanwhile: the next track says what
            return directives.mirror_event(current, target, now, result)

        await self._write_now(job.uid, Directive.MIRROR.value, decide, None)

    def _deadline(self, job: TrackedJob, now: datetime) -> machine.Event | None:
        deadline = machine.active_deadline(job.spec, job.status)
        if job.phase not in machine.WAITING or deadline is None or deadline > now:
            return None
        return machine.DeadlineExceeded(now)

    def _check_blocked(self, uid: str) -> None:
        """A job has waited a while: if what holds it (no pool, paused, no worker offers
        its skill) is not what its status says, write Queued with the reason it has now
        (or with none, once nothing does); a job that merely waits behind others costs
        no write."""
        job = self.book.jobs.get(uid)
        if job is None or job.phase not in machine.NOT_STARTED:
            return
        if uid not in self.book.queues[job.pool_key]:
            return
        if _reason(self.why_blocked(job)) == written_block(job):
            self.book.recheck_blocked(uid)
            return
        wait = self._wait_before_trying(uid)
        if wait is None and (wait := self._queued_writes.try_acquire("queued")) is not None:
            wait += self.rng.uniform(0, 5)  # the budget is spent: spread the rest out
        if wait is not None:
            self.book.defer(Alarm.BLOCKED, uid, wait)
            return
        self._write(uid, "Queued status", self._enqueued, (Alarm.BLOCKED, uid))

    def _enqueued(self, job: TrackedJob, now: datetime) -> machine.Event | None:
        if job.phase not in machine.NOT_STARTED or job.uid not in self.book.queues[job.pool_key]:
            return None
        blocked = self.why_blocked(job)
        if _reason(blocked) == written_block(job):
            return None
        if blocked is None:
            return machine.Enqueued(now, "waiting for a worker")
        return machine.Enqueued(now, blocked.message, blocked.reason)

    # -- writing, with retries -------------------------------------------------------------------

    def _write(self, uid: str, what: str, decision: Decision, alarm: AlarmKey | None) -> None:
        wait = self._wait_before_trying(uid)
        if wait is not None:
            if alarm is not None:
                self.book.defer(alarm[0], alarm[1], wait)
            return
        self._inflight.add(uid)
        self._spawn(self._write_now(uid, what, decision, alarm))

    async def _write_now(
        self, uid: str, what: str, decision: Decision, alarm: AlarmKey | None
    ) -> None:
        try:
            written = await self.transitions.decide(uid, decision)
            self._backoff.pop(uid, None)
            if written is None and (job := self.book.jobs.get(uid)) is not None:
                self.book.track(job)  # nothing to do after all: re-derive its timers
        except JobGone:
            self._backoff.pop(uid, None)
        except Exception as exc:
            delay = self._postpone(uid, what, exc)
            if alarm is not None:
                self.book.defer(alarm[0], alarm[1], delay)
        finally:
            self._inflight.discard(uid)

    def _delete(self, uid: str) -> None:
        job = self.book.jobs.get(uid)
        if job is None:
            return
        wait = self._wait_before_trying(uid)
        if wait is not None:
            self.book.defer(Alarm.EXPIRE, uid, wait)
            return
        self._inflight.add(uid)
        self._spawn(self._delete_now(job))

    async def _delete_now(self, job: TrackedJob) -> None:
        try:
            await self.transitions.store.delete(job)  # the watch will say it is gone
            self._backoff.pop(job.uid, None)
        except Exception as exc:
            delay = self._postpone(job.uid, "deletion after its TTL", exc)
            self.book.defer(Alarm.EXPIRE, job.uid, delay)
        finally:
            self._inflight.discard(job.uid)

    def _wait_before_trying(self, uid: str) -> float | None:
        """None if a write for ``uid`` may start now, else how long until it may: one at
        a time per job, after its backoff, and a bounded number in flight in all."""
        if uid in self._inflight or len(self._inflight) >= self.settings.timer_writes_in_flight:
            return self.settings.tick_seconds
        backoff = self._backoff.get(uid)
        if backoff is not None and backoff[1] > self.book.monotonic():
            return backoff[1] - self.book.monotonic()
        return None

    def _postpone(self, uid: str, what: str, exc: BaseException) -> float:
        failures = self._backoff.get(uid, (0, 0.0))[0] + 1
        ceiling = min(
            self.settings.write_retry_max_seconds,
            self.settings.write_retry_initial_seconds * 2.0 ** (failures - 1),
        )
        delay: float = ceiling * self.rng.uniform(0.5, 1.0)
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
        return delay

    def forget(self, uid: str) -> None:
        self._backoff.pop(uid, None)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def background(self) -> set[asyncio.Task[None]]:
        return self._background


def written_block(job: TrackedJob) -> WaitReason | None:
    """What its status says holds the waiting job (Schedulable=False), if anything."""
    status = job.status
    if status is None or status.phase not in machine.NOT_STARTED:
        return None
    for condition in status.conditions:
        if condition.type == JobConditionType.SCHEDULABLE and condition.status == "False":
            return WaitReason(condition.reason) if condition.reason in _WAIT_REASONS else None
    return None


def _identity(job: TrackedJob | None) -> tuple[str, str | None] | None:
    return (job.uid, job.phase) if job is not None else None


def _reason(blocked: Blocked | None) -> WaitReason | None:
    return blocked.reason if blocked is not None else None


_WAIT_REASONS = frozenset(str(reason) for reason in WaitReason)
