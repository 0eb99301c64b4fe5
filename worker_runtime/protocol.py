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
=======  =====================================  ====================  ======================

Every error is an ``ErrorResponse`` with a 4xx status (5xx only for the operator's
own faults): 400 malformed, 401 bad token, 403 other pool, 404 unknown worker or
attempt, 409 the attempt is no longer current (its lease expired, the job was
cancelled or already finished), 413 too large, 415 not JSON, 422 valid JSON that breaks
the model; 503 while the Kubernetes API server is unavailable (nothing changed: retry).
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


class ClaimRequest(_Message):
    #: How many attempts the worker can take now (its free slots).
    max_attempts: Annotated[int, Field(ge=1, le=1024)] = 1
    #: Long-poll: how long the operator may hold the request when no job is queued.
    wait_seconds: Annotated[float, Field(ge=0, le=60)] = 20


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
    #: The attempts the worker is running now; their leases are renewed.
    attempt_ids: Annotated[list[str], Field(max_length=1024)] = Field(default_factory=list)
    #: The worker is shutting down and takes no new work.
    draining: bool = False


class CommandType(StrEnum):
    cancel = "cancel"  # stop attempt ``attempt_id``: its job was cancelled or timed out
    abandon = "abandon"  # the attempt is no longer current (lease lost); drop it, report nothing
    drain = "drain"  # stop claiming, finish the running attempts, then exit


class Command(_Message):
    type: CommandType
    attempt_id: str | None = None
    reason: ShortText = ""


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
