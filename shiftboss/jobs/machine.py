"""The Job lifecycle as a pure function: ``transition(spec, status, event) -> status``.

No I/O and no clock: every event (``shiftboss.jobs.events``) carries the time it
happened (and, where a retry delay is drawn, its random jitter sample), so the whole
machine is deterministic and unit-tested exhaustively.  ``shiftboss.jobs.dispatcher``
applies the results.

    (none)/Pending --Enqueued--> Queued
    (none)/Pending/Queued/Retrying(due) --Claimed--> Running
    Running --Completed--> Succeeded
    Running --AttemptFailed/LeaseExpired/TimedOut--> Retrying | Failed   (spec.retry.rules)
    Running --AttemptDisrupted--> Queued | Failed   (not counted; Failed by a rule only)
    any non-terminal --CancelRequested--> Cancelled
    any non-terminal --DeadlineExceeded--> Failed
    waiting --ParamsRejected--> Failed
    waiting --SuspendRequested--> Suspended --Resumed--> Queued | Retrying
    (a retry or disruption under spec.suspend goes to Suspended instead)
    finished --RerunRequested--> Queued | Suspended   (a new run: new attempt history)
    (none)/Pending/Queued --Mirrored--> Queued (status.mirrorOf, never claimed)
    mirror --MirrorReleased--> Queued;  mirror --MirrorSucceeded--> Succeeded

Every resulting status carries the conditions of its phase (``shiftboss.jobs.conditions``),
the Job's ``metadata.generation`` and an entry in its timeline, so they ride on the
transition's own write.

A running attempt that must stop (``stop_reason``: cancelled, timed out, past the job's
deadline) is not ended at once: its worker is told to stop and gets a grace period;
``fence_event`` is the event that ends it then.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shiftboss.api.job import (
    AttemptOutcome,
    AttemptRecord,
    JobError,
    JobPhase,
    JobSpec,
    JobStatus,
    format_duration,
    format_instant,
    is_terminal,
)
from shiftboss.api.jobstatus import TimelineEntry
from shiftboss.api.retry import FailureReason, RetryAction
from shiftboss.jobs.conditions import with_conditions
from shiftboss.jobs.deadlines import (
    StopKind,
    StopReason,
    active_deadline,
    attempt_deadline,
    claimable,
    fence_event,
    stop_reason,
)
from shiftboss.jobs.events import (
    AttemptDisrupted,
    AttemptFailed,
    CancelRequested,
    Claimed,
    Completed,
    DeadlineExceeded,
    Enqueued,
    Event,
    LeaseExpired,
    Mirrored,
    MirrorReleased,
    MirrorSucceeded,
    ParamsRejected,
    RerunRequested,
    Resumed,
    SuspendRequested,
    TimedOut,
)
from shiftboss.jobs.retryrules import Failure, decide, describe, first_match
from shiftboss.jobs.runs import (
    HANDBACK_ERRORS,
    InvalidTransition,
    back_in_queue,
    held,
    require,
    rerun,
    timeline_reason,
)

__all__ = [
    "AttemptDisrupted",
    "AttemptFailed",
    "CancelRequested",
    "Claimed",
    "Completed",
    "DeadlineExceeded",
    "Enqueued",
    "Event",
    "InvalidTransition",
    "LeaseExpired",
    "MirrorReleased",
    "MirrorSucceeded",
    "Mirrored",
    "ParamsRejected",
    "RerunRequested",
    "Resumed",
    "StopKind",
    "StopReason",
    "SuspendRequested",
    "TimedOut",
    "active_deadline",
    "attempt_deadline",
    "claimable",
    "fence_event",
    "stop_reason",
    "transition",
]

WAITING = frozenset({None, JobPhase.PENDING, JobPhase.QUEUED, JobPhase.RETRYING})
#: Phases from which a job can become a mirror: it has not been claimed in this run.
NOT_STARTED = frozenset({None, JobPhase.PENDING, JobPhase.QUEUED})
#: How much of a status message a timeline entry keeps.
TIMELINE_MESSAGE_CHARS = 256


# -- decisions ---------------------------------------------------------------------------


# -- the transition function -----------------------------------------------------------


def transition(
    spec: JobSpec,
    status: JobStatus | None,
    event: Event,
    *,
    generation: int | None = None,
    run_generation: int | None = None,
) -> JobStatus:
    """The job's next status after ``event``; ``InvalidTransition`` if it does not apply.
    ``generation`` is the Job's ``metadata.generation`` as the decision saw it, and
    ``run_generation`` the run it asks for (spec.runGeneration or the annotation; by
    default spec.runGeneration): a new job's status is stamped with it."""
    current = status.model_copy(deep=True) if status else JobStatus()
    before, worker = current.phase, current.worker
    if isinstance(event, RerunRequested):
        current = rerun(spec, current, event)
    elif is_terminal(current.phase):
        raise InvalidTransition(f"job is already {current.phase}")
    else:
        if current.run_generation is None:
            current.run_generation = (
                spec.run_generation if run_generation is None else run_generation
            )
        current = _next(spec, current, event)
    assert current.phase is not None
    current.record_transition(
        TimelineEntry(
            from_phase=before,
            to_phase=current.phase,
            reason=timeline_reason(event),
            attempt=current.attempt,
            # The worker of an attempt that just ended; none for a new run.
            worker=current.worker or (None if isinstance(event, RerunRequested) else worker),
            time=event.at,
            message=(current.message or "")[:TIMELINE_MESSAGE_CHARS] or None,
        )
    )
    blocked = event.blocked if isinstance(event, Enqueued) else None
    return with_conditions(current, event.at, generation, blocked)


def _next(spec: JobSpec, current: JobStatus, event: Event) -> JobStatus:
    """``current`` (a copy, changed in place) after ``event``."""
    phase = current.phase
    match event:
        case Enqueued(at=at, message=message):
            # Queued again when what blocks it changes (or nothing does any more).
            require(phase in NOT_STARTED and current.mirror_of is None, event, phase)
            current.phase = JobPhase.QUEUED
            current.message = message or "waiting for a worker"
            return current

        case SuspendRequested(at=at):
            require(spec.suspend and phase in WAITING, event, phase)
            current.phase = JobPhase.SUSPENDED
            current.message = held("suspended by spec.suspend", current, at)
            return current

        case Resumed(at=at):
            require(phase == JobPhase.SUSPENDED and not spec.suspend, event, phase)
            if current.start_time is not None:
                # As for batch/v1: activeDeadlineSeconds counts again from the resume.
                current.start_time = at
            return back_in_queue(current, at, "resumed")

        case Mirrored(primary=primary, primary_phase=primary_phase):
            require(phase in NOT_STARTED and current.attempt == 0, event, phase)
            current.phase = JobPhase.QUEUED
            current.mirror_of = primary
            current.message = (
                f"mirrors job {primary.name} (same spec.idempotencyKey), which is "
                f"{primary_phase}: this job runs no attempt of its own and ends as it ends"
            )
            return current

        case MirrorReleased(why=why):
            require(current.mirror_of is not None and phase in NOT_STARTED, event, phase)
            current.mirror_of = None
            current.phase = JobPhase.QUEUED
            current.message = f"{why}: this job runs on its own; waiting for a worker"[:1024]
            return current

        case MirrorSucceeded(primary=primary, result=result, at=at):
            require(phase in NOT_STARTED and current.attempt == 0, event, phase)
            current.mirror_of = primary
            current.result = result
            current.message = (
                f"succeeded as a mirror of job {primary.name} (same spec.idempotencyKey); "
                "no attempt of its own"
            )
            return _finish(current, JobPhase.SUCCEEDED, at)

        case Claimed(worker=worker, at=at):
            require(
                claimable(current, at) and not spec.suspend and current.mirror_of is None,
                event,
                phase,
            )
            current.phase = JobPhase.RUNNING
            current.attempt += 1
            current.worker = worker
            current.attempt_start_time = at
            current.start_time = current.start_time or at
            current.next_attempt_at = None
            current.progress = None
            current.message = f"attempt {current.attempt} running on {worker}"
            return current

        case Completed(result=result, at=at):
            require(phase == JobPhase.RUNNING, event, phase)
            _end_attempt(current, AttemptOutcome.SUCCEEDED, at)
            current.result = result
            current.error = None
            current.message = f"succeeded on attempt {current.attempt}"
            return _finish(current, JobPhase.SUCCEEDED, at)

        case AttemptFailed(error_type=error_type, message=message) if error_type in HANDBACK_ERRORS:
            require(phase == JobPhase.RUNNING, event, phase)
            return _disrupted(spec, current, AttemptDisrupted(message, event.at, error_type))

        case AttemptFailed() | LeaseExpired() | TimedOut():
            require(phase == JobPhase.RUNNING, event, phase)
            return _attempt_failed(spec, current, event)

        case AttemptDisrupted():
            require(phase == JobPhase.RUNNING, event, phase)
            return _disrupted(spec, current, event)

        case CancelRequested(at=at):
            if phase == JobPhase.RUNNING:
                _end_attempt(current, AttemptOutcome.CANCELLED, at, message="cancelled")
            current.message = "cancelled by spec.cancel"
            return _finish(current, JobPhase.CANCELLED, at)

        case DeadlineExceeded(at=at):
            message = f"exceeded activeDeadlineSeconds={spec.active_deadline_seconds}"
            if phase == JobPhase.RUNNING:
                _end_attempt(current, AttemptOutcome.TIMED_OUT, at, "DeadlineExceeded", message)
            current.error = JobError(type="DeadlineExceeded", message=message, retryable=False)
            current.message = message
            return _finish(current, JobPhase.FAILED, at)

        case ParamsRejected(message=message, at=at):
            require(phase in WAITING, event, phase)
            current.error = JobError(type="InvalidParams", message=message, retryable=False)
            current.message = f"params rejected: {message}"
            return _finish(current, JobPhase.FAILED, at)

    raise InvalidTransition(f"unknown event {event!r}")


def _disrupted(spec: JobSpec, current: JobStatus, event: AttemptDisrupted) -> JobStatus:
    message = event.reason or "disrupted"
    _end_attempt(current, AttemptOutcome.DISRUPTED, event.at, event.error_type, message)
    failure = Failure(event.error_type, message, FailureReason.WORKER_SHUTDOWN)
    found = first_match(spec.retry.rules or [], failure)
    if found is not None and found[1].action is RetryAction.FAIL:
        current.error = JobError(type=event.error_type, message=message, retryable=False)
        current.message = f"failed: {event.error_type}: {message} ({describe(*found)}: fail)"[:1024]
        return _finish(current, JobPhase.FAILED, event.at)
    current.worker = None
    current.progress = None
    disrupted = f"attempt {current.attempt} disrupted ({message}); not counted"
    if spec.suspend:
        current.phase = JobPhase.SUSPENDED
        current.message = held(f"{disrupted}; suspended by spec.suspend", current, event.at)
    else:
        current.phase = JobPhase.QUEUED
        current.message = f"{disrupted}, waiting for a worker"[:1024]
    return current


def _attempt_failed(
    spec: JobSpec, current: JobStatus, event: AttemptFailed | LeaseExpired | TimedOut
) -> JobStatus:
    at = event.at
    if isinstance(event, AttemptFailed):
        failure = Failure.reported(
            event.error_type, event.message, event.retryable, event.retry_after, event.jitter_sample
        )
        outcome = AttemptOutcome.FAILED
    elif isinstance(event, LeaseExpired):
        message = f"worker {current.worker} stopped heartbeating; its lease expired"
        failure = Failure(
            "LeaseExpired", message, FailureReason.LEASE_EXPIRED, jitter_sample=event.jitter_sample
        )
        outcome = AttemptOutcome.LEASE_EXPIRED
    else:
        message = f"attempt ran longer than timeoutSeconds={spec.timeout_seconds}"
        failure = Failure(
            "TimedOut", message, FailureReason.TIMED_OUT, jitter_sample=event.jitter_sample
        )
        outcome = AttemptOutcome.TIMED_OUT
    in_run = current.attempt - current.run_first_attempt + 1
    verdict = decide(spec.retry, failure, current.counted_attempts, in_run)
    error_type, message = failure.error_type, failure.message
    _end_attempt(current, outcome, at, error_type, message, counts=verdict.counts)
    if verdict.delay is None:
        current.error = JobError(type=error_type, message=message, retryable=verdict.retryable)
        current.message = f"failed: {error_type}: {message} ({verdict.why})"[:1024]
        return _finish(current, JobPhase.FAILED, at)
    current.phase = JobPhase.SUSPENDED if spec.suspend else JobPhase.RETRYING
    current.worker = None
    current.next_attempt_at = at + timedelta(seconds=verdict.delay)
    # An absolute time: a countdown would go stale while nothing is written.
    ruled = f"; {verdict.why}" if verdict.why else ""
    failed = f"attempt {current.attempt} failed ({error_type}){ruled}"
    if spec.suspend:
        current.message = held(f"{failed}; suspended by spec.suspend", current, at)
    else:
        current.message = (
            f"{failed}; next attempt at {format_instant(current.next_attempt_at, at)}"
        )[:1024]
    return current


def _end_attempt(
    status: JobStatus,
    outcome: AttemptOutcome,
    at: datetime,
    error_type: str | None = None,
    message: str | None = None,
    *,
    counts: bool = True,
) -> None:
    if outcome.counts and counts:
        status.counted_attempts += 1
    status.record_attempt(
        AttemptRecord(
            attempt=max(status.attempt, 1),
            worker=status.worker,
            start_time=status.attempt_start_time,
            end_time=at,
            outcome=outcome,
            error_type=error_type,
            message=message,
        )
    )


def _finish(status: JobStatus, phase: JobPhase, at: datetime) -> JobStatus:
    status.phase = phase
    status.completion_time = at
    status.next_attempt_at = None
    if status.start_time:
        status.duration = format_duration((at - status.start_time).total_seconds())
    return status
