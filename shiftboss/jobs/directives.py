"""Writes that a Job's spec, or another Job, asks for: cancel, suspend, resume, rerun,
and following an earlier Job with the same idempotencyKey.

``JobBook.track`` notes which one a job is due (``Directive``); the timers take each in
turn and write it through ``Transitions.decide``, with a decision from here that looks
again at the job as it is then (it may have changed since), so a write that is no
longer wanted is not made.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from shiftboss.api.job import JobPhase, is_terminal
from shiftboss.api.jobstatus import MirroredJob
from shiftboss.jobs import machine
from shiftboss.jobs.tracked import TrackedJob


class Directive(enum.Enum):
    """A write a job is due because of its spec (or its idempotencyKey)."""

    CANCEL = "cancellation"
    SUSPEND = "suspension"
    RESUME = "resumption"
    RERUN = "rerun"
    #: Start, switch, end or release following an earlier Job with the same key.
    MIRROR = "idempotency mirror"


def mirror_eligible(job: TrackedJob) -> bool:
    """Whether the idempotencyKey rule applies: the job's first run, not yet started.
    (A rerun always runs: re-running is asked for by name.)"""
    status = job.status
    if job.spec.idempotency_key is None or job.spec.cancel or job.spec.suspend:
        return False
    if status is None:
        return True
    return status.phase in machine.NOT_STARTED and status.attempt == 0 and not status.runs


def mirror_target(job: TrackedJob, keyed: list[TrackedJob]) -> TrackedJob | None:
    """The Job ``job`` must follow instead of running, among ``keyed`` (the namespace's
    Jobs with its key): the latest earlier one that Succeeded, else the first earlier
    one still unfinished; None when every earlier one Failed or was Cancelled."""
    earlier = [other for other in keyed if other.uid != job.uid and other.order < job.order]
    succeeded = [other for other in earlier if other.phase == JobPhase.SUCCEEDED]
    if succeeded:
        return max(succeeded, key=lambda other: other.order)
    unfinished = [other for other in earlier if not is_terminal(other.phase)]
    return min(unfinished, key=lambda other: other.order) if unfinished else None


def mirror_event(
    job: TrackedJob, target: TrackedJob | None, now: datetime, result: Any = None
) -> machine.Event | None:
    """What following ``target`` means for ``job`` now (``result``: the target's, read
    afresh when it Succeeded, since the book keeps no results of finished jobs)."""
    if not mirror_eligible(job):
        return None
    current = job.status.mirror_of if job.status else None
    if target is None:
        if current is None:
            return None
        why = f"job {current.name}, which this one mirrored, failed, was cancelled or is gone"
        return machine.MirrorReleased(why, now)
    ref = MirroredJob(name=target.name, uid=target.uid)
    if target.phase == JobPhase.SUCCEEDED:
        return machine.MirrorSucceeded(ref, result, now)
    if current == ref:
        return None  # already following it
    return machine.Mirrored(ref, str(target.phase or JobPhase.PENDING), now)


def decision(directive: Directive, job: TrackedJob, now: datetime) -> machine.Event | None:
    """The event ``directive`` calls for on ``job`` as it is now, if it still does (all but
    MIRROR, which needs the other Job: ``mirror_event``)."""
    phase, spec = job.phase, job.spec
    if directive is Directive.CANCEL:
        if spec.cancel and phase != JobPhase.RUNNING and not is_terminal(phase):
            return machine.CancelRequested(now)  # a running attempt stops via its lease
    elif directive is Directive.SUSPEND:
        if spec.suspend and not spec.cancel and phase in machine.WAITING:
            return machine.SuspendRequested(now)
    elif directive is Directive.RESUME:
        if not spec.suspend and phase == JobPhase.SUSPENDED:
            return machine.Resumed(now)
    elif directive is Directive.RERUN and job.rerun_due:
        return machine.RerunRequested(job.requested_run, now)
    return None
