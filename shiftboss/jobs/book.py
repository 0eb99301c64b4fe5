"""The operator's in-memory view of the Jobs it serves: where each one belongs.

``JobBook.track`` reads a Job's status (as listed, watched or just written) and puts
the job where it belongs: a pool's queue, the lease table, the timers, or nowhere.
It does no I/O and is idempotent, so re-tracking a job (the periodic resync) re-derives
its timers from the API server's truth.

Timers live in two ``TimerHeap``s, one per clock: times the Job's status states
(``nextAttemptAt``, deadlines, TTLs) on the wall clock, leases and the blocked-job
check on the monotonic clock.  Finished jobs are kept as slim records (no params,
result or attempt history): what the TTL, late reports and the counters need.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from shiftboss.api.job import JobPhase, JobStatus, is_terminal
from shiftboss.jobs import machine
from shiftboss.jobs.directives import Directive, mirror_eligible, mirror_target
from shiftboss.jobs.leases import Lease, LeaseTable, PoolKey
from shiftboss.jobs.queue import JobQueue
from shiftboss.jobs.settings import DispatchSettings
from shiftboss.jobs.timerheap import TimerHeap
from shiftboss.jobs.tracked import TrackedJob
from worker_runtime.protocol import attempt_id


class Alarm(enum.Enum):
    """What a timer is for; its key is (alarm, uid), or (LEASE, attempt id)."""

    #: A retrying job's ``nextAttemptAt``: it is queued again (wall clock).
    RETRY = "retry"
    #: A waiting job's deadline (``activeDeadlineSeconds``) passes (wall clock).
    DEADLINE = "deadline"
    #: A finished job's TTL runs out: it is deleted (wall clock).
    EXPIRE = "expire"
    #: A running attempt reaches its timeout or the job's deadline (wall clock).
    STOP = "stop"
    #: A lease may have run out, or its stop order's fence is due (monotonic).
    LEASE = "lease"
    #: A job waiting this long is checked for a reason it cannot be dispatched (monotonic).
    BLOCKED = "blocked"

    @property
    def monotonic(self) -> bool:
        return self in (Alarm.LEASE, Alarm.BLOCKED)


AlarmKey = tuple[Alarm, str]
#: Re-derived by every ``track``; BLOCKED is kept while the job waits, since its re-check
#: interval grows with the job's age.
_STATUS_ALARMS = (Alarm.RETRY, Alarm.DEADLINE, Alarm.EXPIRE, Alarm.STOP)
#: A job that waits without being blocked is checked again at most this often (seconds).
BLOCKED_RECHECK_MAX_SECONDS = 60.0


class JobBook:
    def __init__(
        self,
        *,
        restore_grace_seconds: float,
        blocked_check_seconds: float,
        aging_seconds_per_level: float = DispatchSettings.aging_seconds_per_level,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.restore_grace_seconds = restore_grace_seconds
        self.blocked_check_seconds = blocked_check_seconds
        #: The clock of leases and timers (seconds; injected so tests can move it).
        self.monotonic = monotonic
        self.jobs: dict[str, TrackedJob] = {}
        self.queues: dict[PoolKey, JobQueue] = defaultdict(
            partial(JobQueue, aging_seconds_per_level)
        )
        self.leases = LeaseTable()
        #: Timers on the wall clock (POSIX seconds) and on the monotonic clock.
        self.wall_timers: TimerHeap[AlarmKey] = TimerHeap()
        self.mono_timers: TimerHeap[AlarmKey] = TimerHeap()
        #: Jobs whose spec (or idempotencyKey) calls for a write still to be made.
        self.directives: dict[str, Directive] = {}
        #: The Jobs with an idempotencyKey, per (namespace, key).
        self._keyed: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._settling_keys = False
        #: Retrying jobs (waiting for ``nextAttemptAt``) per pool, for the pool's counts.
        self._retrying: dict[PoolKey, set[str]] = defaultdict(set)
        #: Per job, the order in which it was first seen (breaks ties of creation time).
        self._arrival: dict[str, int] = {}
        #: Per unwritten waiting job, when it was first seen (monotonic).
        self._first_seen: dict[str, float] = {}
        self._arrivals = itertools.count()
        #: Per pool, an event that waiting claims listen on; set (and replaced) on news.
        self._wakeups: dict[PoolKey, asyncio.Event] = {}
        #: Called with (namespace, pool) whenever a pool's queue or running set changes.
        self.on_pool_change: Callable[[str, str], None] = lambda namespace, pool: None

    # -- the view ------------------------------------------------------------------------

    def track(self, job: TrackedJob) -> None:
        """Put the job where its status says it belongs."""
        uid = job.uid
        queue = self.queues[job.pool_key]
        for alarm in _STATUS_ALARMS:
            self._disarm(alarm, uid)
        self.directives.pop(uid, None)
        self._retrying[job.pool_key].discard(uid)
        phase, status = job.phase, job.status
        if is_terminal(phase):
            job = job.slimmed()
        self.jobs[uid] = job
        lease = self.leases.for_job(uid)
        if lease is not None and (phase != JobPhase.RUNNING or lease.attempt != job.attempt):
            self.drop_lease(lease.key)  # that attempt is over, whoever ended it
        if is_terminal(phase):
            queue.discard(uid)
            self._arrival.pop(uid, None)
            self._first_seen.pop(uid, None)
            ttl = job.spec.ttl_seconds_after_finished
            if job.rerun_due:
                self.directives[uid] = Directive.RERUN
            elif ttl is not None and status is not None and status.completion_time:
                self._arm(Alarm.EXPIRE, uid, status.completion_time + timedelta(seconds=ttl))
        elif phase == JobPhase.RUNNING:
            assert status is not None
            queue.discard(uid)
            self._track_running(job, status)
        else:
            self._track_waiting(job)
        if uid not in queue:
            self._disarm(Alarm.BLOCKED, uid)
        if job.spec.idempotency_key is not None:
            self._settle_key(job)
        self.on_pool_change(*job.pool_key)

    def _track_waiting(self, job: TrackedJob) -> None:
        """A job not running and not finished: queued, held, or due a write first."""
        uid, status, queue = job.uid, job.status, self.queues[job.pool_key]
        deadline = machine.active_deadline(job.spec, status)
        # A suspended job's deadline does not run (its clock restarts on resume); armed,
        # the passed alarm would fire every tick, and each check would hold off the resume.
        if deadline is not None and not job.spec.cancel and job.phase != JobPhase.SUSPENDED:
            self._arm(Alarm.DEADLINE, uid, deadline)
        held, due = self._held(job)
        if due is not None:
            self.directives[uid] = due
        if held:
            queue.discard(uid)
        elif job.phase == JobPhase.RETRYING and status and status.next_attempt_at:
            queue.discard(uid)
            self._retrying[job.pool_key].add(uid)
            self._arm(Alarm.RETRY, uid, status.next_attempt_at)  # queued when due
        else:
            self.enqueue(job)

    def _held(self, job: TrackedJob) -> tuple[bool, Directive | None]:
        """Whether something other than its turn keeps the waiting job out of its queue,
        and the write that is due for it, if any."""
        if job.spec.cancel:
            return True, Directive.CANCEL
        if job.spec.suspend:
            return True, None if job.phase == JobPhase.SUSPENDED else Directive.SUSPEND
        if job.phase == JobPhase.SUSPENDED:
            return True, Directive.RESUME
        if not mirror_eligible(job):
            return False, None
        mirrored = job.status.mirror_of if job.status else None
        target = self.mirror_target(job)
        if target is None and mirrored is None:
            return False, None
        if target is not None and mirrored is not None and mirrored.uid == target.uid:
            return True, None if target.phase != JobPhase.SUCCEEDED else Directive.MIRROR
        return True, Directive.MIRROR

    def mirror_target(self, job: TrackedJob) -> TrackedJob | None:
        """The earlier Job with the same idempotencyKey that ``job`` must follow."""
        key = job.spec.idempotency_key
        if key is None:
            return None
        keyed = [self.jobs[uid] for uid in self._keyed.get((job.namespace, key), ())]
        return mirror_target(job, keyed)

    def follows_another(self, job: TrackedJob) -> bool:
        """Whether the job must not run: it follows (or is due to follow, or was
        following) an earlier Job with the same idempotencyKey."""
        if not mirror_eligible(job):
            return False
        return (job.status is not None and job.status.mirror_of is not None) or (
            self.mirror_target(job) is not None
        )

    def _settle_key(self, job: TrackedJob) -> None:
        """Index ``job`` by its key, and let the other waiting Jobs with that key look
        again: the one they follow may just have finished (or appeared)."""
        key = (job.namespace, job.spec.idempotency_key or "")
        self._keyed[key].add(job.uid)
        self._retrack_keyed(key, job.uid)

    def _retrack_keyed(self, key: tuple[str, str], changed: str) -> None:
        """Track again the waiting Jobs with ``key`` other than ``changed`` (once: tracking
        them settles their key too)."""
        if self._settling_keys:
            return
        self._settling_keys = True
        try:
            for uid in list(self._keyed.get(key, ())):
                other = self.jobs.get(uid)
                if uid != changed and other is not None and mirror_eligible(other):
                    self.track(other)
        finally:
            self._settling_keys = False

    def _track_running(self, job: TrackedJob, status: JobStatus) -> None:
        lease = self.leases.for_job(job.uid)
        if lease is None:
            # Claimed by an earlier run of the operator (a restart, a hand-over): give
            # its worker time to reconnect before the lease can run out.
            lease = Lease(
                key=attempt_id(job.uid, job.attempt),
                uid=job.uid,
                attempt=job.attempt,
                namespace=job.namespace,
                pool=job.spec.pool,
                worker_id=status.worker or "",
                expires=self.monotonic() + self.restore_grace_seconds,
                deadline=machine.attempt_deadline(job.spec, status),
                granted=float("-inf"),
                unconfirmed=True,
            )
            self.leases.add(lease)
        self.arm_lease(lease)
        if lease.stop is None:
            if job.spec.cancel:
                self.wall_timers.arm((Alarm.STOP, job.uid), 0.0)  # stop it now
            elif lease.deadline is not None:
                self._arm(Alarm.STOP, job.uid, lease.deadline)

    def enqueue(self, job: TrackedJob) -> None:
        arrival = self._arrival.setdefault(job.uid, next(self._arrivals))
        self.queues[job.pool_key].push(
            job.uid, job.spec.skill, job.spec.priority, job.created, arrival
        )
        if job.phase in machine.NOT_STARTED and (Alarm.BLOCKED, job.uid) not in self.mono_timers:
            # If it is still waiting after a while, the timers look for a reason it
            # cannot be dispatched (and write it down, or that it is gone).
            first_seen = self._first_seen.setdefault(job.uid, self.monotonic())
            self.mono_timers.arm((Alarm.BLOCKED, job.uid), first_seen + self.blocked_check_seconds)
        self.wake(*job.pool_key)

    def recheck_blocked(self, uid: str) -> None:
        """The job waits its turn: look again after as long as it has waited (capped),
        so a deep backlog costs few checks."""
        now = self.monotonic()
        waited = now - self._first_seen.get(uid, now)
        interval = min(max(waited, self.blocked_check_seconds), BLOCKED_RECHECK_MAX_SECONDS)
        self.mono_timers.arm((Alarm.BLOCKED, uid), now + interval)

    def retry_due(self, uid: str) -> None:
        """A retrying job's ``nextAttemptAt`` has come: back into its pool's queue."""
        job = self.jobs.get(uid)
        if job is not None and job.phase == JobPhase.RETRYING:
            self._retrying[job.pool_key].discard(uid)
            self.enqueue(job)

    def forget(self, uid: str) -> TrackedJob | None:
        job = self.jobs.pop(uid, None)
        lease = self.leases.for_job(uid)
        if lease is not None:
            self.drop_lease(lease.key)
        for alarm in (*_STATUS_ALARMS, Alarm.BLOCKED):
            self._disarm(alarm, uid)
        self.directives.pop(uid, None)
        self._arrival.pop(uid, None)
        self._first_seen.pop(uid, None)
        if job is not None and job.spec.idempotency_key is not None:
            key = (job.namespace, job.spec.idempotency_key)
            self._keyed[key].discard(uid)
            self._retrack_keyed(key, uid)  # the Job they followed may be this one
            if not self._keyed[key]:
                del self._keyed[key]
        if job is not None:
            self._retrying[job.pool_key].discard(uid)
            self.queues[job.pool_key].discard(uid)
            self.on_pool_change(*job.pool_key)
        return job

    # -- leases and timers ----------------------------------------------------------------

    def arm_lease(self, lease: Lease) -> None:
        """Look at the lease when it runs out or its fence is due, whichever is first
        (a heartbeat that renews it moves nothing here: the check re-arms)."""
        when = lease.expires
        if lease.stop is not None:
            when = min(when, lease.stop.fence_at)
        self.mono_timers.arm((Alarm.LEASE, lease.key), when)

    def drop_lease(self, key: str) -> Lease | None:
        self.mono_timers.cancel((Alarm.LEASE, key))
        return self.leases.pop(key)

    def defer(self, alarm: Alarm, key: str, seconds: float) -> None:
        """Fire ``alarm`` for ``key`` again in ``seconds`` (a write to retry, or one in
        flight): on the monotonic clock whatever the alarm, since backoffs are."""
        if not alarm.monotonic:
            self.wall_timers.cancel((alarm, key))
        self.mono_timers.arm((alarm, key), self.monotonic() + seconds)

    def due(self, now: datetime) -> list[AlarmKey]:
        """Every timer due now, disarmed: wall-clock ones first."""
        wall = self.wall_timers.pop_due(now.timestamp())
        return [*wall, *self.mono_timers.pop_due(self.monotonic())]

    def _arm(self, alarm: Alarm, uid: str, when: datetime) -> None:
        self.mono_timers.cancel((alarm, uid))  # a deferred retry of it, superseded
        self.wall_timers.arm((alarm, uid), when.timestamp())

    def _disarm(self, alarm: Alarm, uid: str) -> None:
        self.mono_timers.cancel((alarm, uid))  # where ``defer`` puts every alarm
        if not alarm.monotonic:
            self.wall_timers.cancel((alarm, uid))

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
        return len(self.queues[key]) + len(self._retrying.get(key, ()))

    def running_count(self, namespace: str, pool: str) -> int:
        return self.leases.count_in_pool((namespace, pool))

    def busy_workers(self, namespace: str) -> set[str]:
        return self.leases.workers_in(namespace)
