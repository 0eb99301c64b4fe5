"""The observed side of a ``Job``: its phases and ``status`` (written by the operator only).

Every step of a job's life is a status transition on its Job object::

    Pending -> Queued -> Running -> Succeeded | Failed | Cancelled
                  ^         |
                  +-- Retrying (waits for status.nextAttemptAt)

    Suspended: held out of its queue by spec.suspend (a running attempt finishes first)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import Field

from .common import ApiModel, Condition, Timestamp, conditions_schema_extra, text

#: How many attempts ``status.attempts`` keeps (the oldest are dropped first).
MAX_ATTEMPT_HISTORY = 20
#: How many transitions of the current run ``status.timeline`` keeps (the last ones).
MAX_TIMELINE = 20
#: How many earlier runs ``status.runs`` keeps (the last ones).
MAX_RUN_HISTORY = 10
#: Attempt numbers go on across runs (reruns), so a job may reach this many in all.
MAX_ATTEMPT_NUMBER = 100000
if TYPE_CHECKING:  # text() builds the annotation at run time; to a type checker it is a str
    ErrorMessage = str
    ShortMessage = str
else:
    ErrorMessage = text(4096)
    ShortMessage = text(1024)


class JobPhase(StrEnum):
    """Where a Job is in its life."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    RETRYING = "Retrying"
    #: Held out of its queue by spec.suspend.
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for Succeeded, Failed and Cancelled: the Job will not change again."""
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.CANCELLED})


def is_terminal(phase: JobPhase | str | None) -> bool:
    """True when ``phase`` (an enum, its string, or None) is a terminal phase."""
    return phase is not None and phase in TERMINAL_PHASES


class JobConditionType(StrEnum):
    """The condition types of a Job's status (kstatus, plus batch/v1's Complete and Failed)."""

    READY = "Ready"
    #: kstatus "abnormal-true": present (True) only while the job is queued, running or
    #: waiting to retry.
    RECONCILING = "Reconciling"
    #: kstatus "abnormal-true": present (True) only once the job Failed or was Cancelled.
    STALLED = "Stalled"
    #: As a batch/v1 Job's: present (True) only once Succeeded.
    COMPLETE = "Complete"
    #: As a batch/v1 Job's: present (True) only once Failed.
    FAILED = "Failed"
    #: As a batch/v1 Job's: present (True) only while held by spec.suspend.
    SUSPENDED = "Suspended"
    #: Present (False) only while the job cannot be dispatched: its reason is a
    #: ``WaitReason``.
    SCHEDULABLE = "Schedulable"


class WaitReason(StrEnum):
    """Why a waiting job cannot be dispatched now (the reason of Schedulable=False)."""

    POOL_NOT_FOUND = "PoolNotFound"
    POOL_PAUSED = "PoolPaused"
    #: The pool's workers are ready, but none offers the job's skill.
    NO_WORKER_WITH_SKILL = "NoWorkerWithSkill"
    #: The pool has no ready worker yet (starting, or scaled to zero).
    NO_READY_WORKER = "NoReadyWorker"
    #: No worker offers the skill and the pool is Degraded (crash loops, quota, ...).
    POOL_DEGRADED = "PoolDegraded"

    @property
    def stalled(self) -> bool:
        """Whether the job can go nowhere until someone changes something (kstatus
        Stalled): a missing pool or a skill no worker offers; a paused or degraded pool
        may come back by itself."""
        return self in (WaitReason.POOL_NOT_FOUND, WaitReason.NO_WORKER_WITH_SKILL)


class AttemptOutcome(StrEnum):
    """How one attempt of a job ended."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    LEASE_EXPIRED = "LeaseExpired"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"
    #: Cut short by no fault of the job (its worker's pod was deleted for a rollout or a
    #: scale-down, or the worker handed it back): not counted against maxAttempts.
    DISRUPTED = "Disrupted"

    @property
    def counts(self) -> bool:
        """Whether an attempt that ended this way counts against ``retry.maxAttempts``."""
        return self is not AttemptOutcome.DISRUPTED


class AttemptRecord(ApiModel):
    """One attempt of a job, kept in status.attempts."""

    attempt: int = Field(ge=1, le=MAX_ATTEMPT_NUMBER, description="Attempt number, from 1.")
    worker: str | None = Field(None, max_length=253, description="The worker that ran it.")
    start_time: Timestamp | None = Field(None, description="When the attempt started.")
    end_time: Timestamp | None = Field(None, description="When the attempt ended.")
    outcome: AttemptOutcome | None = Field(
        None,
        description=(
            "How the attempt ended: Succeeded, Failed, LeaseExpired (the worker stopped "
            "heartbeating), TimedOut, Cancelled or Disrupted (its worker's pod was deleted "
            "or the worker handed it back; not counted against maxAttempts). Unset while "
            "it runs."
        ),
    )
    error_type: str | None = Field(
        None,
        max_length=256,
        description="Type name of the error that ended the attempt, if any.",
    )
    message: ErrorMessage | None = Field(None, description="Error or other message.")


class JobError(ApiModel):
    """The error that failed the job (or its latest failed attempt)."""

    type: str = Field(
        min_length=1,
        max_length=256,
        description="Error type name, for example ValueError or TimedOut.",
    )
    message: ErrorMessage = Field("", description="Error message.")
    retryable: bool = Field(
        True,
        description="Whether the error allowed a retry (false for non-retryable errors).",
    )


class JobProgress(ApiModel):
    """Progress last reported by the worker running the job."""

    percent: float = Field(0, ge=0, le=100, description="Completion, 0 to 100.")
    message: ShortMessage | None = Field(None, description="What the worker is doing.")
    updated_at: Timestamp | None = Field(None, description="When it was reported.")


def format_duration(seconds: float) -> str:
    """A short human duration for ``status.duration``: 850ms, 3.2s, 4m5s, 2h3m, 3d4h."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h"


def format_instant(when: datetime, now: datetime) -> str:
    """A point in time for a message that stays true while nothing is written: UTC,
    rounded up to the second (never earlier than ``when``), the date only when it is
    not ``now``'s day: ``14:02:07Z`` or ``2025-03-02T14:02:07Z``."""
    if when.microsecond:
        when = when.replace(microsecond=0) + timedelta(seconds=1)
    if when.date() == now.date():
        return when.strftime("%H:%M:%SZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class TimelineEntry(ApiModel):
    """One transition of the current run, kept in status.timeline."""

    from_phase: JobPhase | None = Field(
        None, alias="from", description="The phase before (unset: the job was new)."
    )
    to_phase: JobPhase = Field(alias="to", description="The phase after.")
    reason: str = Field(
        max_length=64,
        description=(
            "What happened, in CamelCase: Enqueued (or the WaitReason that blocks it), "
            "Claimed, Completed, AttemptFailed, LeaseExpired, TimedOut, Disrupted, "
            "Cancelled, DeadlineExceeded, ParamsRejected, Suspended, Resumed, "
            "RerunRequested, Mirrored, MirrorReleased or MirrorFinished."
        ),
    )
    attempt: int = Field(
        0, ge=0, le=MAX_ATTEMPT_NUMBER, description="The attempt number at the time."
    )
    worker: str | None = Field(None, max_length=253, description="The worker, if any.")
    time: Timestamp = Field(description="When it happened.")
    message: ShortMessage | None = Field(None, description="The status message it set.")


class RunRecord(ApiModel):
    """The outcome of an earlier run of a Job (before spec.runGeneration was raised)."""

    run_generation: int = Field(ge=0, description="The run's runGeneration.")
    phase: JobPhase = Field(description="How the run ended.")
    attempts: int = Field(0, ge=0, le=1000, description="How many attempts it took.")
    last_attempt: int = Field(
        0,
        ge=0,
        le=MAX_ATTEMPT_NUMBER,
        description=(
            "The number of its last attempt. Attempt numbers go on across runs, so that a "
            "late report of an earlier run's attempt is never taken for the new run's."
        ),
    )
    start_time: Timestamp | None = Field(None, description="When its first attempt started.")
    completion_time: Timestamp | None = Field(None, description="When it ended.")
    duration: str | None = Field(None, max_length=64, description="How long it took.")
    error: JobError | None = Field(None, description="The error that failed it, if it failed.")
    message: ShortMessage | None = Field(None, description="Its last status message.")


class MirroredJob(ApiModel):
    """The Job (of the same namespace) that a mirror follows."""

    name: str = Field(max_length=253, description="Its name.")
    uid: str = Field(max_length=64, description="Its metadata.uid (the name may be reused).")


class JobStatus(ApiModel):
    """The observed state of a Job, written by the operator."""

    # model_dump(by_alias=True, exclude_none=True, mode="json") is a complete status
    # (attempt and attempts always included): build it from the current status, since
    # a merge patch replaces lists and would reset attempt to 0.

    phase: JobPhase | None = Field(
        None,
        description=(
            "Phase of the job: Pending, Queued, Running, Retrying (waiting for "
            "nextAttemptAt), Succeeded, Failed or Cancelled."
        ),
    )
    attempt: int = Field(
        0,
        ge=0,
        le=MAX_ATTEMPT_NUMBER,
        description=(
            "Number of the current (or last) attempt; 0 before the first. Numbers go on "
            "across runs (see runs)."
        ),
    )
    counted_attempts: int = Field(
        0,
        ge=0,
        le=1000,
        description=(
            "Finished attempts that count against spec.retry.maxAttempts (all but those "
            "ended by disruptions)."
        ),
    )
    worker: str | None = Field(
        None,
        max_length=253,
        description="The worker running the current attempt.",
    )
    start_time: Timestamp | None = Field(
        None,
        description=(
            "When the run's first attempt started, or, if it was suspended since, when it "
            "was resumed (as for batch/v1 Jobs): activeDeadlineSeconds counts from here."
        ),
    )
    attempt_start_time: Timestamp | None = Field(
        None, description="When the current attempt started."
    )
    completion_time: Timestamp | None = Field(
        None, description="When the job reached Succeeded, Failed or Cancelled."
    )
    next_attempt_at: Timestamp | None = Field(
        None, description="When the next attempt may start (phase Retrying)."
    )
    duration: str | None = Field(
        None,
        max_length=64,
        description="How long the job took, from first start to completion (for example 3.2s).",
    )
    result: Any = Field(
        None,
        description="JSON result returned by the skill (small results only; large outputs "
        "go to artifacts).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    error: JobError | None = Field(None, description="The error that failed the job.")
    progress: JobProgress | None = Field(None, description="Latest progress report.")
    attempts: list[AttemptRecord] = Field(
        default_factory=list,
        max_length=MAX_ATTEMPT_HISTORY,
        description=f"History of the last {MAX_ATTEMPT_HISTORY} attempts, oldest first.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    message: ShortMessage | None = Field(None, description="Human-readable summary.")
    run_generation: int | None = Field(
        None,
        ge=0,
        description=(
            "The run this status is for: the spec.runGeneration (or the annotation "
            "shiftboss.io/run-generation, the higher) when it started."
        ),
    )
    runs: list[RunRecord] = Field(
        default_factory=list,
        max_length=MAX_RUN_HISTORY,
        description=f"Outcomes of the last {MAX_RUN_HISTORY} earlier runs, oldest first.",
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    timeline: list[TimelineEntry] = Field(
        default_factory=list,
        max_length=MAX_TIMELINE,
        description=(
            f"The last {MAX_TIMELINE} transitions of the current run, oldest first "
            "(kubectl shiftboss timeline renders it)."
        ),
        json_schema_extra={"x-kubernetes-list-type": "atomic"},
    )
    mirror_of: MirroredJob | None = Field(
        None,
        description=(
            "The earlier Job with the same spec.idempotencyKey that this one mirrors "
            "instead of running: it ends as that Job ends, with its result."
        ),
    )
    observed_generation: int | None = Field(
        None,
        ge=0,
        description="The metadata.generation of the spec this status reflects.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Conditions of the job, set with every status write: Ready (True once "
            "Succeeded, False otherwise, with the phase or the failure as its reason); "
            "Reconciling (present, True, only while the job is queued, running or waiting "
            "to retry); Stalled (present, True, only once it Failed or was Cancelled); "
            "Complete (present, True, only once Succeeded) and Failed (present, True, only "
            "once Failed), so that kubectl wait --for=condition=Complete works as for "
            "batch/v1 Jobs; Suspended (present, True, only while spec.suspend holds it); "
            "Schedulable (present, False, only while it cannot be dispatched, with reason "
            "PoolNotFound, PoolPaused, NoWorkerWithSkill, NoReadyWorker or PoolDegraded; Stalled is True "
            "too for the first and third). A job that only waits its turn is not written, "
            "so it has no conditions until a worker claims it."
        ),
        json_schema_extra=conditions_schema_extra(10),
    )

    def record_attempt(self, record: AttemptRecord) -> None:
        """Add or replace (same attempt number) ``record`` in the bounded history."""
        history = [a for a in self.attempts if a.attempt != record.attempt]
        history.append(record)
        history.sort(key=lambda a: a.attempt)
        self.attempts = history[-MAX_ATTEMPT_HISTORY:]

    def record_transition(self, entry: TimelineEntry) -> None:
        """Append ``entry`` to the bounded timeline (the oldest are dropped first)."""
        self.timeline = [*self.timeline, entry][-MAX_TIMELINE:]

    @property
    def run_first_attempt(self) -> int:
        """The number the current run's first attempt has (or will have)."""
        return (self.runs[-1].last_attempt if self.runs else 0) + 1

    def record_run(self, run: RunRecord) -> None:
        """Append ``run`` to the bounded history of earlier runs."""
        self.runs = [*self.runs, run][-MAX_RUN_HISTORY:]
