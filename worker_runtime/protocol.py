"""The worker protocol: HTTP/JSON messages between workers and the operator, under ``/v1``.

These pydantic models are the single definition of the wire format.  The operator
serves them (``shiftboss.workerapi``), the Python runtime sends them, and the OpenAPI
document in ``docs/worker-api.openapi.json`` is generated from them (``make openapi``)
for clients in other languages.

Endpoints (all JSON, all take ``Authorization: Bearer <service-account token>``):

=======  =====================================  ====================  ======================
method   path                                   request               response
=======  =====================================  ====================  ======================
POST     /v1/workers/register                   RegisterRequest       RegisterResponse
POST     /v1/workers/{worker_id}/claim          ClaimRequest          ClaimResponse
POST     /v1/workers/{worker_id}/heartbeat      HeartbeatRequest      HeartbeatResponse
POST     /v1/attempts/{attempt_id}/progress     ProgressReport        Ack
POST     /v1/attempts/{attempt_id}/complete     CompleteReport        Ack
POST     /v1/attempts/{attempt_id}/fail         FailReport            Ack
POST     /v1/attempts/{attempt_id}/release      ReleaseReport         Ack
=======  =====================================  ====================  ======================

The rules both runtimes keep (leases, claim replay, outcome delivery, cancellation
with grace, hand-backs) are written down in ``docs/worker-protocol.md``.

Every error is an ``ErrorResponse`` with a 4xx status (5xx only for the operator's
own faults): 400 malformed, 401 bad token, 403 other pool, 404 unknown worker or
attempt, 409 the attempt is no longer current (its lease expired, the job was
cancelled or already finished) or the worker id belongs to another identity, 413 too
large, 415 not JSON, 422 valid JSON that breaks the model (or a skill schema that
cannot be evaluated safely), 429 too many requests (``Retry-After`` says when to try
again); 503 while the operator cannot act (the Kubernetes API server is unavailable,
or this replica is a standby): nothing changed, retry.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = "v1"

#: Largest request body the operator accepts, in bytes.  Results beyond
#: ``MAX_INLINE_RESULT_BYTES`` fail the attempt with a clear message instead.
MAX_REQUEST_BYTES = 1024 * 1024
#: Largest JSON result stored inline in a Job's status (serialised, in bytes).
#: Kept well under etcd's 1.5 MiB object limit so a status never breaks its Job.
MAX_INLINE_RESULT_BYTES = 32 * 1024

Name = Annotated[
    str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
]
#: A client-chosen request id: letters, digits, '.', '_', '-'.
RequestId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
ShortText = Annotated[str, Field(max_length=1024)]


class _Message(BaseModel):
    # Unknown fields are refused so a typo in a client is an error, not silence.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SkillSpec(_Message):
    """A skill a worker offers, with the JSON Schemas of its input and output."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z_][A-Za-z0-9_.-]*$")]
    description: ShortText = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)
    output_schema: dict[str, Any] = Field(default_factory=dict)


class RegisterRequest(_Message):
    pool: Name
    worker_id: Name
    skills: Annotated[list[SkillSpec], Field(max_length=256)]
    capacity: Annotated[int, Field(ge=1, le=1024)] = 1
    version: Annotated[str, Field(max_length=64)] = ""
    #: The language runtime of the worker, for humans and metrics ("python", "go").
    runtime: Annotated[str, Field(max_length=64)] = ""


class RegisterResponse(_Message):
    worker_id: str
    #: How often to heartbeat; a lease lasts ``lease_seconds`` after each one.
    heartbeat_interval_seconds: float
    lease_seconds: float
    #: How long a skill may take to stop after ``ctx.cancelled`` is set, before the
    #: runtime cancels it (the ``cancel`` command carries its own value too).
    cancel_grace_seconds: float = 5.0


class ClaimRequest(_Message):
    #: How many attempts the worker can take now (its free slots).
    max_attempts: Annotated[int, Field(ge=1, le=1024)] = 1
    #: Long-poll: how long the operator may hold the request when no job is queued.
    wait_seconds: Annotated[float, Field(ge=0, le=60)] = 20
    #: Makes a retried claim safe: a claim that repeats the id of this worker's last
    #: claim gets the same assignments again (those still current) instead of new ones.
    #: Send a new id for every new claim and the same id when retrying one whose
    #: answer was lost.
    request_id: RequestId | None = None


class JobRef(_Message):
    namespace: str
    name: str
    uid: str


class Assignment(_Message):
    """One attempt of a job, handed to a worker after the claim was written to the Job."""

    attempt_id: str
    job: JobRef
    attempt: int
    skill: str
    params: dict[str, Any]
    #: When the attempt must end (``timeoutSeconds`` / ``activeDeadlineSeconds``), if any.
    deadline: datetime | None = None
    lease_seconds: float


class ClaimResponse(_Message):
    assignments: list[Assignment] = Field(default_factory=list)


class HeartbeatRequest(_Message):
    #: Every attempt the worker holds: running, stopping, or finished with an outcome
    #: the operator has not yet answered.  Their leases are renewed.
    attempt_ids: Annotated[list[str], Field(max_length=1024)] = Field(default_factory=list)
    #: The worker is shutting down and takes no new work.
    draining: bool = False


class CommandType(StrEnum):
    #: Stop attempt ``attempt_id`` (its job was cancelled or its deadline passed): set
    #: ``ctx.cancelled``, wait ``grace_seconds``, then cancel the skill; report ``fail``.
    cancel = "cancel"
    #: The attempt is no longer current (its lease was lost): stop it, report nothing.
    abandon = "abandon"
    #: The operator holds ``assignment`` for this worker but the heartbeat did not list
    #: it (a claim answer lost on the wire): start it, or ``release`` it when there is no
    #: free slot.  Ignore it if the attempt was already started here.
    assign = "assign"


class Command(_Message):
    type: CommandType
    attempt_id: str | None = None
    reason: ShortText = ""
    #: ``cancel``: how long the skill may take to stop before it is cancelled.
    grace_seconds: Annotated[float, Field(ge=0, le=3600)] | None = None
    #: ``assign``: the attempt to take up.
    assignment: Assignment | None = None


class HeartbeatResponse(_Message):
    commands: list[Command] = Field(default_factory=list)


class ProgressReport(_Message):
    percent: Annotated[float, Field(ge=0, le=100)]
    message: Annotated[str, Field(max_length=1024)] = ""


class CompleteReport(_Message):
    result: Any = None


class FailReport(_Message):
    error_type: Annotated[str, Field(min_length=1, max_length=256)]
    message: Annotated[str, Field(max_length=4096)] = ""
    #: False for errors that must never be retried (``FatalError``, invalid params).
    retryable: bool = True
    #: A worker's request to wait at least this long before the next attempt.
    retry_after_seconds: Annotated[float, Field(ge=0, le=86400)] | None = None


class ReleaseReport(_Message):
    """Give an attempt back without an outcome (no free slot, or the worker is shutting
    down).  The job is queued again at once and the attempt does not count against
    ``retry.maxAttempts``."""

    reason: Annotated[str, Field(max_length=1024)] = ""


class Ack(_Message):
    ok: bool = True


class ErrorDetail(_Message):
    #: A stable machine-readable code, e.g. ``attempt_not_current``.
    code: str
    message: str
    #: The request field at fault, when there is one (dotted path).
    field: str | None = None


class ErrorResponse(_Message):
    error: ErrorDetail


def attempt_id(job_uid: str, attempt: int) -> str:
    """The id of attempt ``attempt`` of the job with ``job_uid``; stable across restarts."""
    return f"{job_uid}.{attempt}"


def parse_attempt_id(value: str) -> tuple[str, int]:
    """Split an attempt id into (job uid, attempt number); ``ValueError`` when malformed."""
    uid, sep, number = value.rpartition(".")
    if not sep or not uid or not number.isdigit() or len(value) > 128:
        raise ValueError(f"malformed attempt id {value!r}: expected '<job uid>.<attempt number>'")
    return uid, int(number)
