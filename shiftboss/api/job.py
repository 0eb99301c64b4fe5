"""The ``Job`` resource: one unit of work, dispatched to a WorkerPool's workers.

Every step of a job's life is a status transition on its Job object::

    Pending -> Queued -> Running -> Succeeded | Failed | Cancelled
                  ^         |
                  +-- Retrying (waits for status.nextAttemptAt)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from .common import (
    DNS1123_LABEL,
    DNS1123_LABEL_MAX,
    DNS1123_LABEL_WORDS,
    SERVER_DEFAULT_EMPTY,
    ApiModel,
    Condition,
    CrdInfo,
    PrinterColumn,
    Resource,
    Timestamp,
    cel,
    conditions_schema_extra,
    text,
    validations,
)
from .forms import Matching
from .retry import RetryPolicy

#: How many attempts ``status.attempts`` keeps (the oldest are dropped first).
MAX_ATTEMPT_HISTORY = 20

#: A skill name, as workers register it (same rule as the worker protocol).
SKILL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"

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


_DEADLINE_RULE = cel(
    "!has(self.activeDeadlineSeconds) || !has(self.timeoutSeconds) || "
    "self.activeDeadlineSeconds >= self.timeoutSeconds",
    "spec.activeDeadlineSeconds must be greater than or equal to spec.timeoutSeconds: "
    "raise activeDeadlineSeconds or lower timeoutSeconds",
    field_path=".activeDeadlineSeconds",
)


class JobSpec(ApiModel):
    """The desired state of a Job: what to run, where, and how to retry it."""

    model_config = ConfigDict(json_schema_extra=validations(_DEADLINE_RULE))

    pool: Annotated[
        str, Matching(DNS1123_LABEL, DNS1123_LABEL_WORDS, max_length=DNS1123_LABEL_MAX)
    ] = Field(
        description=(
            "Name of the WorkerPool, in the Job's namespace, whose workers run the job. Immutable."
        ),
        json_schema_extra=validations(
            cel(
                "self == oldSelf",
                "spec.pool is immutable: create a new Job to run the work on another pool",
            )
        ),
    )
    skill: Annotated[
        str,
        Matching(
            SKILL_PATTERN,
            "a skill name: a letter or '_', then letters, digits, '_', '.' or '-' "
            "(for example resize or images.resize-v2)",
            max_length=63,
        ),
    ] = Field(
        description="Name of the skill to run, as registered by the pool's workers. Immutable.",
        json_schema_extra=validations(
            cel(
                "self == oldSelf",
                "spec.skill is immutable: create a new Job to run another skill",
            )
        ),
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Parameters of the skill, a JSON object validated against the input schema "
            "the workers registered for it. Immutable."
        ),
        json_schema_extra={
            **SERVER_DEFAULT_EMPTY,
            **validations(
                cel(
                    "self == oldSelf",
                    "spec.params is immutable: create a new Job with the new params",
                )
            ),
        },
    )
    priority: int = Field(
        5,
        ge=0,
        le=10,
        description="0 to 10; within a pool, higher-priority jobs run first, then older ones.",
    )
    timeout_seconds: int | None = Field(
        None,
        ge=1,
        le=31536000,
        description=(
            "Time limit of each attempt, in seconds. An attempt that runs longer is "
            "stopped as TimedOut and the retry policy decides. Unset: no limit."
        ),
    )
    active_deadline_seconds: int | None = Field(
        None,
        ge=1,
        le=31536000,
        description=(
            "Time limit of the whole job (all attempts and waits between them), in seconds "
            "from its first start; past it the job fails. At least timeoutSeconds."
        ),
    )
    retry: RetryPolicy = Field(
        default_factory=RetryPolicy,
        description="Retry policy of failed attempts.",
        json_schema_extra=SERVER_DEFAULT_EMPTY,
    )
    cancel: bool = Field(
        False,
        description=(
            "Set to true to cancel the job: a queued job is dropped, a running attempt "
            "is stopped, and the phase becomes Cancelled. Cannot be set back to false."
        ),
        json_schema_extra=validations(
            cel(
                "self || !oldSelf",
                "spec.cancel cannot go back from true to false: a cancelled Job stays "
                "cancelled; create a new Job to run the work again",
            )
        ),
    )
    ttl_seconds_after_finished: int | None = Field(
        None,
        ge=0,
        le=31536000,
        description=(
            "Delete the Job this many seconds after it finished (Succeeded, Failed or "
            "Cancelled). Unset: keep it."
        ),
    )
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=253,
        description=(
            "Client-chosen key; a submission whose key matches an existing Job of the "
            "namespace returns that Job instead of creating a new one."
        ),
    )

    @model_validator(mode="after")
    def _deadline(self) -> JobSpec:
        if (
            self.timeout_seconds is not None
            and self.active_deadline_seconds is not None
            and self.active_deadline_seconds < self.timeout_seconds
        ):
            raise ValueError(_DEADLINE_RULE["message"])
        return self


class AttemptRecord(ApiModel):
    """One attempt of a job, kept in status.attempts."""

    attempt: int = Field(ge=1, le=1000, description="Attempt number, from 1.")
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
        le=1000,
        description="Number of the current (or last) attempt; 0 before the first.",
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
    start_time: Timestamp | None = Field(None, description="When the first attempt started.")
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
            "batch/v1 Jobs. A job that only waits its turn is not written, so it has no "
            "conditions until a worker claims it."
        ),
        json_schema_extra=conditions_schema_extra(8),
    )

    def record_attempt(self, record: AttemptRecord) -> None:
        """Add or replace (same attempt number) ``record`` in the bounded history."""
        history = [a for a in self.attempts if a.attempt != record.attempt]
        history.append(record)
        history.sort(key=lambda a: a.attempt)
        self.attempts = history[-MAX_ATTEMPT_HISTORY:]


class Job(Resource):
    """A Job is one unit of work that Shiftboss dispatches to a worker of a WorkerPool.
    Its status records every step: queued, running, retried after a backoff, timed out,
    cancelled, succeeded or failed."""

    crd_info: ClassVar[CrdInfo] = CrdInfo(
        kind="Job",
        plural="jobs",
        singular="job",
        short_names=("sbjob", "sbj"),
        list_kind="JobList",
        printer_columns=(
            PrinterColumn("Pool", "string", ".spec.pool", "The WorkerPool running the job."),
            PrinterColumn("Skill", "string", ".spec.skill", "The skill run."),
            PrinterColumn("Phase", "string", ".status.phase", "Phase of the job."),
            PrinterColumn("Attempts", "integer", ".status.attempt", "Current attempt number."),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
            PrinterColumn("Duration", "string", ".status.duration", "Time to completion."),
            PrinterColumn("Priority", "integer", ".spec.priority", "Priority (0-10).", priority=1),
            PrinterColumn("Worker", "string", ".status.worker", "Current worker.", priority=1),
            PrinterColumn("Message", "string", ".status.message", "Summary.", priority=1),
        ),
        selectable_fields=(".status.phase", ".spec.pool", ".spec.skill"),
    )

    kind: str = Field("Job", description="Job")
    spec: JobSpec = Field(description="What to run, where, and how to retry it.")
    status: JobStatus | None = Field(
        None,
        description="Observed state of the job, written by the operator.",
    )
