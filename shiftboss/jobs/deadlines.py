"""When a job may be claimed and when its running attempt must stop: pure decisions on
a Job's spec and status, taken by the dispatcher's claims and timers (and re-exported by
``shiftboss.jobs.machine``, whose events end the attempts these decide to stop)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shiftboss.api.job import JobPhase, JobSpec, JobStatus
from shiftboss.jobs.events import CancelRequested, DeadlineExceeded, Event, TimedOut


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
