"""Applying the state machine: decide on the freshest copy, write, re-decide on conflict.

Every change of a Job's status goes through ``Transitions.decide``: under the job's
lock, a decision function looks at the job as last seen and returns an event (or None);
the new status is written with the resourceVersion it was decided on; if the Job
changed meanwhile (409) it is read again and the decision taken again.  Only after the
write landed do queues, leases, Events and metrics follow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from shiftboss import metrics
from shiftboss.api.job import AttemptOutcome, JobPhase, JobStatus, is_terminal
from shiftboss.jobs import machine
from shiftboss.jobs.book import JobBook
from shiftboss.jobs.errors import JobBusy
from shiftboss.jobs.leases import Lease
from shiftboss.jobs.settings import DispatchSettings
from shiftboss.jobs.store import JobGone, JobStore, StaleJob
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.kube.events import EventRecorder
from shiftboss.kube.flow import Priority
from worker_runtime.protocol import attempt_id

log = logging.getLogger("shiftboss.dispatcher")

#: Looks at a job as last seen (and the time) and says what happens to it, if anything.
Decision = Callable[[TrackedJob, datetime], machine.Event | None]
#: How many times a decision is re-taken after a conflict before giving up for now.
MAX_CONFLICTS = 5
#: Writes a worker waits on (a claim's answer, an outcome's acknowledgement) go first; a
#: Queued status nobody waits on goes last; lease ends, deadlines and the rest between.
_URGENT = (machine.Claimed, machine.Completed, machine.AttemptFailed, machine.AttemptDisrupted)


#: Transitions no person needs an Event for: the common path, and a blocker that cleared.
_QUIET = (machine.Claimed, machine.Completed, machine.Enqueued, machine.MirrorReleased)
#: Where a disrupted attempt leaves its job.
_REQUEUED = frozenset({JobPhase.QUEUED, JobPhase.SUSPENDED})


def _last_outcome(status: JobStatus) -> AttemptOutcome | None:
    return status.attempts[-1].outcome if status.attempts else None


def write_priority(event: machine.Event) -> Priority:
    if isinstance(event, _URGENT):
        return Priority.CRITICAL
    if isinstance(event, machine.Enqueued):
        return Priority.BACKGROUND
    return Priority.NORMAL


class Transitions:
    def __init__(
        self,
        book: JobBook,
        store: JobStore,
        events: EventRecorder,
        settings: DispatchSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.book, self.store, self.events = book, store, events
        self.settings, self.clock = settings, clock
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def lock(self, uid: str) -> asyncio.Lock:
        return self._locks[uid]

    def locked(self, uid: str) -> bool:
        lock = self._locks.get(uid)
        return lock is not None and lock.locked()

    def drop_lock(self, uid: str) -> None:
        lock = self._locks.get(uid)
        if lock is not None and not lock.locked():
            del self._locks[uid]

    async def decide(self, uid: str, decision: Decision) -> TrackedJob | None:
        """Take ``decision`` on the job and write its event; the job as written, or None
        when the decision was to do nothing.  ``JobGone`` if the job was deleted,
        ``JobBusy`` if it kept changing; other API errors propagate (nothing written)."""
        async with self._locks[uid]:
            for _ in range(MAX_CONFLICTS):
                job = self.book.jobs.get(uid)
                if job is None:
                    raise JobGone(f"job {uid} is no longer tracked")
                if job.slim:  # a finished job's record (a rerun): the write needs it whole
                    job = await self._read_whole(job)
                event = decision(job, self.clock())
                if event is None:
                    return None
                try:
                    return await self.apply(job, event)
                except StaleJob:
                    await self.reread(job)
        raise JobBusy("the job kept changing while the operator decided; try again")

    async def apply(self, job: TrackedJob, event: machine.Event) -> TrackedJob:
        """Persist one transition, then update the book, Events and metrics from it."""
        status = machine.transition(
            job.spec,
            job.status,
            event,
            generation=job.generation,
            run_generation=job.requested_run,
        )
        try:
            updated = await self.store.write_status(job, status, write_priority(event))
        except JobGone:
            self.forget(job.uid)
            raise
        metrics.STATUS_WRITES.labels(type(event).__name__).inc()
        if isinstance(event, machine.Claimed):
            now = self.book.monotonic()
            self.book.leases.add(
                Lease(
                    key=attempt_id(job.uid, status.attempt),
                    uid=job.uid,
                    attempt=status.attempt,
                    namespace=job.namespace,
                    pool=job.spec.pool,
                    worker_id=event.worker,
                    expires=now + self.settings.lease_seconds,
                    deadline=machine.attempt_deadline(job.spec, status),
                    granted=now,
                )
            )
        self.track_answer(updated)
        self._notice(updated, event)
        return updated

    async def reread(self, job: TrackedJob) -> None:
        metrics.WRITE_CONFLICTS.inc()
        self.track_answer(await self._read_whole(job))

    def track_answer(self, answer: TrackedJob) -> None:
        """Track the Job as an answer has it, unless the watch already brought a newer
        version meanwhile (the answer of a write can come after the watch's events for it
        and for a change made right after it, such as a rerun asked for): the older answer
        would replace that change in the book, and nothing would bring it back."""
        known = self.book.jobs.get(answer.uid)
        if known is not None and answer.older_than(known.resource_version):
            self.book.track(known)  # again: what this write added (a lease) is taken in
        else:
            self.book.track(answer)

    async def _read_whole(self, job: TrackedJob) -> TrackedJob:
        """The Job as the API server has it now, whole (the book keeps finished jobs slim:
        without result and history); ``JobGone`` once it was deleted or replaced."""
        try:
            fresh = await self.store.read(job.namespace, job.name)
        except JobGone:
            self.forget(job.uid)
            raise
        if fresh.uid != job.uid:  # deleted and created again under the same name
            self.forget(job.uid)
            raise JobGone(f"job {job.namespace}/{job.name} was replaced")
        return fresh

    def forget(self, uid: str) -> None:
        self.book.forget(uid)
        self.drop_lock(uid)

    def _notice(self, job: TrackedJob, event: machine.Event) -> None:
        """Kubernetes Events and metrics for what a person must notice (not successes)."""
        status = job.status
        assert status is not None
        if is_terminal(status.phase):
            metrics.JOBS_FINISHED.labels(job.namespace, job.spec.pool, str(status.phase)).inc()
        if isinstance(event, machine.Enqueued) and event.blocked is not None:
            reason, warning = str(event.blocked), True  # Schedulable=False: say why
        elif isinstance(event, _QUIET):
            return
        elif isinstance(event, machine.SuspendRequested | machine.Resumed):
            reason, warning = type(event).__name__, False
        elif isinstance(event, machine.RerunRequested):
            reason, warning = "Rerun", False
        elif isinstance(event, machine.Mirrored | machine.MirrorSucceeded):
            reason, warning = "Mirroring", False
        elif isinstance(event, machine.CancelRequested):
            reason, warning = "Cancelled", False
        elif isinstance(event, machine.ParamsRejected):
            reason, warning = "InvalidParams", True
        elif isinstance(event, machine.DeadlineExceeded):
            reason, warning = "DeadlineExceeded", True
        elif status.phase in _REQUEUED and _last_outcome(status) == AttemptOutcome.DISRUPTED:
            reason, warning = "Disrupted", False  # queued again (or held), not counted
        else:
            warning = True
            last = status.attempts[-1] if status.attempts else None
            error_type = last.error_type if last and last.error_type else "Error"
            metrics.ATTEMPTS_FAILED.labels(
                job.namespace, job.spec.pool, metrics.error_type_label(error_type)
            ).inc()
            reason = "Retrying" if status.phase == JobPhase.RETRYING else "Failed"
        self.events.record(
            kind="Job",
            namespace=job.namespace,
            name=job.name,
            uid=job.uid,
            reason=reason,
            message=status.message or reason,
            warning=warning,
        )
