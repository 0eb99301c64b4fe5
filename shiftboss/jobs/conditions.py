"""A Job's conditions (pure), derived from its phase at every status write.

Conditions ride on the writes a job makes anyway (claimed, finished, retrying, ...):
they add no write of their own.  kstatus reads ``Reconciling`` and ``Stalled``
("abnormal-true": present only while True) and ``observedGeneration``; ``kubectl wait``
reads ``Complete`` and ``Failed`` as it does for batch/v1 Jobs (present only once
True, as there).  ``lastTransitionTime`` moves only when a condition's status does.
"""

from __future__ import annotations

from datetime import datetime

from shiftboss.api.common import ConditionStatus, set_condition
from shiftboss.api.job import JobConditionType, JobError, JobPhase, JobStatus
from shiftboss.api.jobstatus import WaitReason

READY = JobConditionType.READY
RECONCILING = JobConditionType.RECONCILING
STALLED = JobConditionType.STALLED
COMPLETE = JobConditionType.COMPLETE
FAILED = JobConditionType.FAILED
SUSPENDED = JobConditionType.SUSPENDED
SCHEDULABLE = JobConditionType.SCHEDULABLE

#: Error types that are their own failure reason (the rest say why no retry came).
_OWN_REASON = frozenset({"DeadlineExceeded", "InvalidParams"})


def failure_reason(error: JobError | None) -> str:
    """Why a Failed job failed, as a CamelCase reason (error types may be dotted paths)."""
    if error is None:
        return "Failed"
    if error.type in _OWN_REASON:
        return error.type
    return "AttemptsExhausted" if error.retryable else "NotRetryable"


def _wanted(
    status: JobStatus, blocked: WaitReason | None
) -> dict[JobConditionType, tuple[bool, str]]:
    """The conditions the job's phase calls for: type -> (status, reason)."""
    phase = status.phase
    if phase == JobPhase.SUCCEEDED:
        return {READY: (True, "Succeeded"), COMPLETE: (True, "Succeeded")}
    if phase == JobPhase.FAILED:
        reason = failure_reason(status.error)
        return {READY: (False, reason), STALLED: (True, reason), FAILED: (True, reason)}
    if phase == JobPhase.CANCELLED:
        return {READY: (False, "Cancelled"), STALLED: (True, "Cancelled")}
    if phase == JobPhase.SUSPENDED:
        return {READY: (False, "Suspended"), SUSPENDED: (True, "Suspended")}
    if status.mirror_of is not None:
        return {READY: (False, "Mirroring"), RECONCILING: (True, "Mirroring")}
    if blocked is not None:
        # A missing pool or a skill no worker offers needs a person: Stalled (kstatus);
        # a paused or degraded pool may come back by itself: still Reconciling.
        progress = STALLED if blocked.stalled else RECONCILING
        return {READY: (False, blocked), progress: (True, blocked), SCHEDULABLE: (False, blocked)}
    reason = str(phase or JobPhase.PENDING)
    return {READY: (False, reason), RECONCILING: (True, reason)}


def with_conditions(
    status: JobStatus, at: datetime, generation: int | None, blocked: WaitReason | None = None
) -> JobStatus:
    """``status`` (changed in place, and returned) with the conditions of its phase, as
    of ``at``, and stamped with the Job's ``metadata.generation`` (kept if None).
    ``blocked``: why the waiting job cannot be dispatched, if something holds it."""
    if generation is not None:
        status.observed_generation = generation
    wanted = _wanted(status, blocked)
    message = status.message or str(status.phase or JobPhase.PENDING)
    conditions = [c for c in status.conditions if c.type in wanted]
    for type_, (true, reason) in wanted.items():
        conditions = set_condition(
            conditions,
            type_,
            ConditionStatus.TRUE if true else ConditionStatus.FALSE,
            reason,
            message,
            observed_generation=status.observed_generation,
            now=at,
        )
    status.conditions = conditions
    return status
