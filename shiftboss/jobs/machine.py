"""The Job lifecycle as a pure function: ``transition(spec, status, event) -> status``.

No I/O and no clock: every event carries the time it happened (and, where a retry
delay is drawn, its random jitter sample), so the whole machine is deterministic and
unit-tested exhaustively.  ``shiftboss.jobs.dispatcher`` applies the results.

    (none)/Pending --Enqueued--> Queued
    (none)/Pending/Queued/Retrying(due) --Claimed--> Running
    Running --Completed--> Succeeded
    Running --AttemptFailed/LeaseExpired/TimedOut--> Retrying | Failed   (spec.retry.rules)
    Running --AttemptDisrupted--> Queued | Failed   (not counted; Failed by a rule only)
    any non-terminal --CancelRequested--> Cancelled
    any non-terminal --DeadlineExceeded--> Failed
    waiting --ParamsRejected--> Failed

Every resulting status carries the conditions of its phase (``shiftboss.jobs.conditions``)
and the Job's ``metadata.generation``, so they ride on the transition's own write.

A running attempt that must stop (``stop_reason``: cancelled, timed out, past the job's
deadline) is not ended at once: its worker is told to stop and gets a grace period;
``fence_event`` is the event that ends it then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

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
from shiftboss.api.retry import FailureReason, RetryAction
from shiftboss.jobs.conditions import with_conditions
from shiftboss.jobs.retryrules import Failure, decide, describe, first_match

WAITING = frozenset({None, JobPhase.PENDING, JobPhase.QUEUED, JobPhase.RETRYING})


class InvalidTransition(Exception):
    """The event does not apply to the job's current phase (a stale or duplicate report)."""


# -- events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enqueued:
    """The operator has seen the job and it waits for a worker (written only if it waits)."""

    at: datetime
    message: str = ""


@dataclass(frozen=True)
class Claimed:
    worker: str
    at: datetime


@dataclass(frozen=True)
class Completed:
    result: Any
    at: datetime


@dataclass(frozen=True)
class AttemptFailed:
    error_type: str
    message: str
    retryable: bool
    at: datetime
    #: The worker asked to wait at least this long before the next attempt.
    retry_after: float | None = None
    #: A uniform sample in [-1, 1] that spreads the backoff delay by ``jitter``.
    jitter_sample: float = 0.0


@dataclass(frozen=True)
class LeaseExpired:
    """The worker stopped heartbeating (it died or lost the network)."""

    at: datetime
    jitter_sample: float = 0.0


@dataclass(frozen=True)
class TimedOut:
    """The attempt ran past ``spec.timeoutSeconds``."""

    at: datetime
    jitter_sample: float = 0.0


@dataclass(frozen=True)
class AttemptDisrupted:
    """The attempt was cut short by no fault of the job: its worker's pod was deleted
    (rollout, scale-down, eviction) or its worker handed it back.  Not counted."""

    reason: str
    at: datetime
    error_type: str = "Disrupted"


@dataclass(frozen=True)
class CancelRequested:
    at: datetime


@dataclass(frozen=True)
class DeadlineExceeded:
    """The whole job ran past ``spec.activeDeadlineSeconds``."""

    at: datetime


@dataclass(frozen=True)
class ParamsRejected:
    """The params break the skill's input schema: never retried."""

    message: str
    at: datetime


Event = (
    Enqueued
    | Claimed
    | Completed
    | AttemptFailed
    | LeaseExpired
    | TimedOut
    | AttemptDisrupted
    | CancelRequested
    | DeadlineExceeded
    | ParamsRejected
)

# -- decisions ---------------------------------------------------------------------------


#: Error types by which a worker hands an attempt back (older runtimes fail it this way).
HANDBACK_ERRORS = frozenset({"WorkerShutdown"})


def claimable(status: JobStatus | None, now: datetime) -> bool:
    """Whether a worker may take the job now."""
    if status is None or status.phase in (None, JobPhase.PENDING, JobPhase.QUEUED):
        return True
    if status.phase == JobPhase.RETRYING:
        return status.next_attempt_at is None or status.next_attempt_at <= now
    return False


def attempt_deadline(spec: JobSpec, status: JobStatus) -> datetime | None:
    """When the running attempt must end: its own timeout or the job's deadline, if any."""
    candidates = []
    if spec.timeout_seconds and status.attempt_start_time:
        candidates.append(status.attempt_start_time + timedelta(seconds=spec.timeout_seconds))
    job_deadline = active_deadline(spec, status)
    if job_deadline:
        candidates.append(job_deadline)
    return min(candidates) if candidates else None


def active_deadline(spec: JobSpec, status: JobStatus | None) -> datetime | None:
    """When the whole job must be over (counted from its first attempt's start)."""
    if spec.active_deadline_seconds and status and status.start_time:
        return status.start_time + timedelta(seconds=spec.active_deadline_seconds)
    return None


class StopKind(StrEnum):
    CANCEL = "cancel"
    DEADLINE = "deadline"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class StopReason:
    kind: StopKind
    message: str


def stop_reason(spec: JobSpec, status: JobStatus | None, now: datetime) -> StopReason | None:
    """Why the running attempt must stop now, if it must: cancel first, then the job's
    deadline, then the attempt's own timeout."""
    if status is None or status.phase != JobPhase.RUNNING:
        return None
    if spec.cancel:
        return StopReason(StopKind.CANCEL, "the job was cancelled (spec.cancel)")
    job_deadline = active_deadline(spec, status)
    if job_deadline is not None and job_deadline <= now:
        return StopReason(
            StopKind.DEADLINE,
            f"the job exceeded activeDeadlineSeconds={spec.active_deadline_seconds}",
        )
    deadline = attempt_deadline(spec, status)
    if deadline is not None and deadline <= now:
        return StopReason(
            StopKind.TIMEOUT, f"the attempt ran longer than timeoutSeconds={spec.timeout_seconds}"
        )
    return None


def fence_event(kind: StopKind, at: datetime, jitter_sample: float = 0.0) -> Event:
    """The event that ends an attempt stopped for ``kind``, whatever its worker reported."""
    if kind is StopKind.CANCEL:
        return CancelRequested(at)
    if kind is StopKind.DEADLINE:
        return DeadlineExceeded(at)
    return TimedOut(at, jitter_sample)


# -- the transition function -----------------------------------------------------------


def transition(
    spec: JobSpec, status: JobStatus | None, event: Event, *, generation: int | None = None
) -> JobStatus:
    """The job's next status after ``event``; ``InvalidTransition`` if it does not apply.
    ``generation`` is the Job's ``metadata.generation`` as the decision saw it."""
    current = status.model_copy(deep=True) if status else JobStatus()
    if is_terminal(current.phase):
        raise InvalidTransition(f"job is already {current.phase}")
    return with_conditions(_next(spec, current, event), event.at, generation)


def _next(spec: JobSpec, current: JobStatus, event: Event) -> JobStatus:
    """``current`` (a copy, changed in place) after ``event``."""
    phase = current.phase
    match event:
        case Enqueued(at=at, message=message):
            _require(phase in (None, JobPhase.PENDING), event, phase)
            current.phase = JobPhase.QUEUED
            current.message = message or "waiting for a worker"
            return current

        case Claimed(worker=worker, at=at):
            _require(claimable(current, at), event, phase)
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
            _require(phase == JobPhase.RUNNING, event, phase)
            _end_attempt(current, AttemptOutcome.SUCCEEDED, at)
            current.result = result
            current.error = None
            current.message = f"succeeded on attempt {current.attempt}"
            return _finish(current, JobPhase.SUCCEEDED, at)

        case AttemptFailed(error_type=error_type, message=message) if error_type in HANDBACK_ERRORS:
            _require(phase == JobPhase.RUNNING, event, phase)
            return _disrupted(spec, current, AttemptDisrupted(message, event.at, error_type))

        case AttemptFailed() | LeaseExpired() | TimedOut():
            _require(phase == JobPhase.RUNNING, event, phase)
            return _attempt_failed(spec, current, event)

        case AttemptDisrupted():
            _require(phase == JobPhase.RUNNING, event, phase)
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
            _require(phase in WAITING, event, phase)
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
    current.phase = JobPhase.QUEUED
    current.worker = None
    current.progress = None
    current.message = (
        f"attempt {current.attempt} disrupted ({message}); not counted, waiting for a worker"
    )[:1024]
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
    verdict = decide(spec.retry, failure, current.counted_attempts, current.attempt)
    error_type, message = failure.error_type, failure.message
    _end_attempt(current, outcome, at, error_type, message, counts=verdict.counts)
    if verdict.delay is None:
        current.error = JobError(type=error_type, message=message, retryable=verdict.retryable)
        current.message = f"failed: {error_type}: {message} ({verdict.why})"[:1024]
        return _finish(current, JobPhase.FAILED, at)
    current.phase = JobPhase.RETRYING
    current.worker = None
    current.next_attempt_at = at + timedelta(seconds=verdict.delay)
    # An absolute time: a countdown would go stale while nothing is written.
    ruled = f"; {verdict.why}" if verdict.why else ""
    current.message = (
        f"attempt {current.attempt} failed ({error_type}){ruled}; "
        f"next attempt at {format_instant(current.next_attempt_at, at)}"
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


def _require(ok: bool, event: Event, phase: JobPhase | None) -> None:
    if not ok:
        raise InvalidTransition(f"{type(event).__name__} does not apply to phase {phase}")
