"""The submission API's wire models (``/v1/jobs``) and the pure mapping to and from Jobs.

A submission is a Job's spec (camelCase, as in a manifest) plus the Job's ``name`` or
``generateName``; unknown fields are refused at every depth, so a typo is an error
rather than a default silently applied.  The answer is the Job as the API server has
it: name, uid, who submitted it, spec and status.
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shiftboss.api.common import ApiModel, Timestamp
from shiftboss.api.job import Job, JobSpec, JobStatus
from shiftboss.client.jobs import build_job, manifest

#: Who submitted a Job through this API (the caller's username); set on create only.
SUBMITTED_BY = "shiftboss.io/submitted-by"

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
NAME_MAX = 253
GENERATE_NAME_PATTERN = r"^[a-z0-9][-a-z0-9.]*$"


class SubmitRequest(JobSpec):
    """A Job to create: its spec's fields, and its name or the prefix of a generated one
    (neither: the skill's name and a random suffix)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=None)

    name: str | None = Field(
        None,
        min_length=1,
        max_length=NAME_MAX,
        pattern=NAME_PATTERN,
        description="The Job's name (a DNS subdomain); a Job of that name must not exist.",
    )
    generate_name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=GENERATE_NAME_PATTERN,
        description="Prefix of a generated name, used when name is unset (for example add-).",
    )

    @model_validator(mode="after")
    def _one_name(self) -> SubmitRequest:
        if self.name and self.generate_name:
            raise ValueError("set name or generateName, not both")
        return self

    @field_validator("*", mode="before")
    @classmethod
    def _no_unknown_nested(cls, value: Any, info: ValidationInfo) -> Any:
        """Nested spec models ignore unknown keys (objects read back from the API server
        must load); a submission refuses them, naming the whole path."""
        name = info.field_name
        if name is not None:
            unknown = unknown_field(cls.model_fields[name].annotation, value, alias_of(cls, name))
            if unknown is not None:
                raise ValueError(f"unknown field {unknown!r}")
        return value


class JobView(ApiModel):
    """A Job as the submission API returns it."""

    namespace: str
    name: str
    uid: str
    submitted_by: str | None = Field(None, description=f"The {SUBMITTED_BY} annotation.")
    created_at: Timestamp | None = None
    spec: JobSpec
    status: JobStatus | None = Field(None, description="Unset until the operator writes one.")


def alias_of(model: type[BaseModel], name: str) -> str:
    return model.model_fields[name].alias or name


def _nested_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model inside ``annotation`` (``X``, ``X | None``, ``list[X]``) and whether it
    is a list of them."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and args:
        model, _ = _nested_model(args[0])
        return model, True
    if origin in (Union, types.UnionType):
        for arg in args:
            model, many = _nested_model(arg)
            if model is not None:
                return model, many
    return None, False


def unknown_field(annotation: Any, value: Any, where: str) -> str | None:
    """The dotted path of the first key in ``value`` that the model in ``annotation`` does
    not know (by field name or camelCase alias), or None."""
    model, many = _nested_model(annotation)
    if model is None:
        return None
    if many:
        items = enumerate(value) if isinstance(value, list) else iter(())
        for index, item in items:
            found = unknown_field(model, item, f"{where}[{index}]")
            if found is not None:
                return found
        return None
    if not isinstance(value, dict):
        return None
    fields = {key: info for name, info in model.model_fields.items() for key in (name, info.alias)}
    for key, item in value.items():
        info = fields.get(key)
        if info is None:
            return f"{where}.{key}"
        found = unknown_field(info.annotation, item, f"{where}.{key}")
        if found is not None:
            return found
    return None


def job_manifest(request: SubmitRequest, submitted_by: str) -> dict[str, Any]:
    """The Job to create for ``request``: only the spec fields the caller set (the API
    server's defaults apply to the rest), named as the Python client names its Jobs."""
    named = build_job(
        request.pool,
        request.skill,
        name=request.name or "",
        generate_name=request.generate_name or "",
        annotations={SUBMITTED_BY: submitted_by},
    )
    spec = request.model_dump(exclude_unset=True, exclude={"name", "generate_name"})
    # pool and skill are required, params is always sent (as the client does).
    spec.update(pool=request.pool, skill=request.skill, params=request.params)
    return manifest(Job(metadata=named.metadata, spec=JobSpec.model_validate(spec)))


def job_view(obj: dict[str, Any]) -> JobView:
    """The answer for a Job object read from (or written to) the API server."""
    job = Job.model_validate(obj)
    metadata = job.metadata
    return JobView(
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        submitted_by=(metadata.get("annotations") or {}).get(SUBMITTED_BY),
        created_at=metadata.get("creationTimestamp"),
        spec=job.spec,
        status=job.status,
    )
