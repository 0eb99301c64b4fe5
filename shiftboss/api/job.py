"""The ``Job`` resource: one unit of work, dispatched to a WorkerPool's workers.

The desired side (``JobSpec``) is here; the observed side, phases and ``JobStatus``,
is in ``jobstatus`` (re-exported here, so ``shiftboss.api.job`` names the whole Job).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from .common import (
    DNS1123_LABEL,
    DNS1123_LABEL_MAX,
    DNS1123_LABEL_WORDS,
    SERVER_DEFAULT_EMPTY,
    ApiModel,
    CrdInfo,
    PrinterColumn,
    Resource,
    cel,
    validations,
)
from .forms import Matching
from .jobstatus import (
    MAX_ATTEMPT_HISTORY,
    TERMINAL_PHASES,
    AttemptOutcome,
    AttemptRecord,
    JobConditionType,
    JobError,
    JobPhase,
    JobProgress,
    JobStatus,
    format_duration,
    format_instant,
    is_terminal,
)
from .retry import RetryPolicy

__all__ = [
    "MAX_ATTEMPT_HISTORY",
    "MAX_RUN_GENERATION",
    "RUN_GENERATION_ANNOTATION",
    "SKILL_PATTERN",
    "TERMINAL_PHASES",
    "AttemptOutcome",
    "AttemptRecord",
    "Job",
    "JobConditionType",
    "JobError",
    "JobPhase",
    "JobProgress",
    "JobSpec",
    "JobStatus",
    "annotated_run",
    "format_duration",
    "format_instant",
    "is_terminal",
]

#: The annotation ``kubectl shiftboss rerun`` raises to request another run without
#: changing spec (a GitOps tool then sees no drift): a decimal integer, like
#: spec.runGeneration, and the higher of the two is the run requested.
RUN_GENERATION_ANNOTATION = "shiftboss.io/run-generation"
#: The highest run spec.runGeneration (or the annotation) may ask for.
MAX_RUN_GENERATION = 1000000


def annotated_run(metadata: Mapping[str, Any]) -> int | None:
    """The run a Job's rerun annotation asks for: 0 when it has none; None when it is
    not a whole number from 0 to MAX_RUN_GENERATION (then it is ignored, rather than
    failing the whole Job). The operator and the client read it with this one rule."""
    value = (metadata.get("annotations") or {}).get(RUN_GENERATION_ANNOTATION)
    if value is None:
        return 0
    valid = isinstance(value, str) and value.isascii() and value.isdigit()
    return int(value) if valid and int(value) <= MAX_RUN_GENERATION else None


#: A skill name, as workers register it (same rule as the worker protocol).
SKILL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
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
            "Client-chosen key. A Job whose key is also on an earlier Job of the namespace "
            "(by creation time, then name) that is unfinished or Succeeded does not run: it "
            "mirrors that Job (status.mirrorOf names it) and ends as it ends, with its "
            "result. Earlier Jobs that Failed or were Cancelled do not count, so submitting "
            "again with the same key runs the work again after a failure."
        ),
    )
    suspend: bool = Field(
        False,
        description=(
            "Set to true to hold the job: a waiting job leaves its pool's queue (phase "
            "Suspended); a running attempt finishes first, and a retry it asks for waits. "
            "Set back to false to resume it. As for batch/v1 Jobs, activeDeadlineSeconds does "
            "not run out while the job is suspended, and counts from zero again when it is "
            "resumed."
        ),
    )
    run_generation: int = Field(
        0,
        ge=0,
        le=MAX_RUN_GENERATION,
        description=(
            "Raise it to run a finished Job again without deleting it (GitOps-safe: the "
            "operator never writes spec). A fresh run starts with a new attempt history "
            "once the Job is finished and this (or the annotation "
            f"{RUN_GENERATION_ANNOTATION}, which kubectl shiftboss rerun sets) is above "
            "status.runGeneration; the previous run is kept in status.runs."
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
