"""The pure part of the client: the Job object a submission creates, what a finished
Job's status means for its caller (a result or an exception), and list selectors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypedDict, Unpack

from pydantic import BaseModel

from shiftboss.api.job import Job, JobPhase, JobSpec
from shiftboss.api.retry import RetryPolicy
from shiftboss.client.errors import JobCancelled, JobFailed

Params = Mapping[str, Any] | BaseModel


class JobOptions(TypedDict, total=False):
    """What a submission may set besides pool, skill and params (see the Job's spec)."""

    #: The Job's name; unset: ``generate_name`` plus a random suffix.
    name: str
    #: The name's prefix when ``name`` is unset (default: the skill's name and ``-``).
    generate_name: str
    priority: int
    timeout_seconds: int
    active_deadline_seconds: int
    retry: RetryPolicy | Mapping[str, Any]
    ttl_seconds_after_finished: int
    idempotency_key: str
    #: Create the Job held (phase ``Suspended``): it runs once ``resume``d.
    suspend: bool
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


#: The options that go in ``metadata``; the rest are the spec's.
_METADATA_OPTIONS = frozenset({"name", "generate_name", "labels", "annotations"})


def build_job(
    pool: str, skill: str, params: Params | None = None, **options: Unpack[JobOptions]
) -> Job:
    """The Job to create; ``params`` may be a pydantic model (the skill's own params
    class). Invalid values raise pydantic's ``ValidationError`` before anything is sent."""
    if isinstance(params, BaseModel):
        params = params.model_dump(mode="json")
    spec: dict[str, Any] = {"pool": pool, "skill": skill, "params": dict(params or {})}
    spec.update({k: v for k, v in options.items() if k not in _METADATA_OPTIONS})
    name = options.get("name")
    metadata: dict[str, Any] = (
        {"name": name}
        if name
        else {"generateName": options.get("generate_name") or _name_prefix(skill)}
    )
    if labels := options.get("labels"):
        metadata["labels"] = dict(labels)
    if annotations := options.get("annotations"):
        metadata["annotations"] = dict(annotations)
    return Job(metadata=metadata, spec=JobSpec.model_validate(spec))


def _name_prefix(skill: str) -> str:
    """``add-`` for skill ``add``: a skill name made a valid start of an object name."""
    stem = re.sub(r"[^a-z0-9.-]+", "-", skill.lower()).strip("-.")[:40]
    return f"{stem or 'job'}-"


def manifest(job: Job) -> dict[str, Any]:
    """What is sent to create ``job``: only the fields the caller set, so that the API
    server's defaults (and a newer CRD's) apply to the rest."""
    body = job.model_dump(mode="json", exclude_none=True, exclude_unset=True)
    return {"apiVersion": job.api_version, "kind": job.kind, **body}


def outcome(job: Job) -> Any:
    """The result of a finished job; ``JobFailed`` or ``JobCancelled`` when it did not
    succeed. Call only for a Job in a terminal phase."""
    status = job.status
    phase = status.phase if status else None
    if phase is JobPhase.SUCCEEDED:
        return status.result if status else None
    if phase is JobPhase.CANCELLED:
        raise JobCancelled(job)
    assert status is not None and phase is JobPhase.FAILED, f"{job.name} is not finished"
    if status.error is not None:
        raise JobFailed(job, status.error.type, status.error.message)
    raise JobFailed(job, "Unknown", status.message or "no error recorded")


def field_selector(pool: str | None, phase: JobPhase | str | None) -> str | None:
    """The ``fieldSelector`` for a list of one pool's and/or one phase's Jobs (the CRD
    declares both fields selectable)."""
    terms = []
    if pool:
        terms.append(f"spec.pool={pool}")
    if phase:
        terms.append(f"status.phase={JobPhase(phase).value}")
    return ",".join(terms) or None


def label_selector(labels: Mapping[str, str] | None) -> str | None:
    """The ``labelSelector`` matching every one of ``labels``."""
    return ",".join(f"{key}={value}" for key, value in (labels or {}).items()) or None
