"""Holds and runs of a Job (pure, used by ``shiftboss.jobs.machine``): the messages of a
suspended job, going back to the queue, a fresh run of a finished job with the old one
kept in ``status.runs``, and the reasons of timeline entries."""

from __future__ import annotations

from datetime import datetime

from shiftboss.api.job import JobPhase, JobSpec, JobStatus, format_instant, is_terminal
from shiftboss.api.jobstatus import RunRecord
from shiftboss.jobs.events import (
    AttemptDisrupted,
    AttemptFailed,
    CancelRequested,
    Enqueued,
    Event,
    RerunRequested,
    SuspendRequested,
)

#: Error types by which a worker hands an attempt back (older runtimes fail it this way).
HANDBACK_ERRORS = frozenset({"WorkerShutdown"})


class InvalidTransition(Exception):
    """The event does not apply to the job's current phase (a stale or duplicate report)."""


def require(ok: bool, event: Event, phase: JobPhase | None) -> None:
    if not ok:
        raise InvalidTransition(f"{type(event).__name__} does not apply to phase {phase}")


#: Timeline reasons that are not the event's own name.
_REASONS: dict[type, str] = {
    AttemptDisrupted: "Disrupted",
    CancelRequested: "Cancelled",
    SuspendRequested: "Suspended",
}


def timeline_reason(event: Event) -> str:
    if isinstance(event, Enqueued) and event.blocked is not None:
        return str(event.blocked)
    if isinstance(event, AttemptFailed) and event.error_type in HANDBACK_ERRORS:
        return "Disrupted"
    return _REASONS.get(type(event), type(event).__name__)


def held(what: str, status: JobStatus, at: datetime) -> str:
    """The message of a suspended job: why, and what happens when it resumes."""
    then = "waits for a worker"
    if status.next_attempt_at is not None:
        then = f"waits for its next attempt, due at {format_instant(status.next_attempt_at, at)}"
    return f"{what}; set spec.suspend to false to resume it (it then {then})"[:1024]


def back_in_queue(status: JobStatus, at: datetime, what: str) -> JobStatus:
    """``status`` back in its queue: Retrying until a pending retry is due, else Queued."""
    if status.next_attempt_at is not None and status.next_attempt_at > at:
        status.phase = JobPhase.RETRYING
        status.message = f"{what}; next attempt at {format_instant(status.next_attempt_at, at)}"
    else:
        status.phase = JobPhase.QUEUED
        status.next_attempt_at = None
        status.message = f"{what}; waiting for a worker"
    return status


def rerun(spec: JobSpec, current: JobStatus, event: RerunRequested) -> JobStatus:
    """A finished job's next run: a fresh status, the finished run kept in ``runs``."""
    previous = current.run_generation or 0
    require(
        is_terminal(current.phase) and event.run_generation > previous and not spec.cancel,
        event,
        current.phase,
    )
    assert current.phase is not None
    # The attempt number goes on (a late report of the old run's attempt must never pass
    # for the new run's); the history and maxAttempts start again.
    fresh = JobStatus(
        attempt=current.attempt,
        run_generation=event.run_generation,
        runs=current.runs,
        conditions=current.conditions,
        observed_generation=current.observed_generation,
    )
    fresh.record_run(
        RunRecord(
            run_generation=previous,
            phase=current.phase,
            attempts=current.attempt - current.run_first_attempt + 1,
            last_attempt=current.attempt,
            start_time=current.start_time,
            completion_time=current.completion_time,
            duration=current.duration,
            error=current.error,
            message=current.message,
        )
    )
    what = f"run {event.run_generation} requested"
    if spec.suspend:
        fresh.phase = JobPhase.SUSPENDED
        fresh.message = held(f"{what}; suspended by spec.suspend", fresh, event.at)
        return fresh
    return back_in_queue(fresh, event.at, what)
