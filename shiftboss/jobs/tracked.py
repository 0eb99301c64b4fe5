"""The operator's in-memory view of one Job: typed, with the resourceVersion it was read at."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from shiftboss.api.job import (
    MAX_RUN_GENERATION,
    RUN_GENERATION_ANNOTATION,
    Job,
    JobSpec,
    JobStatus,
    annotated_run,
)
from worker_runtime.protocol import JobRef


@dataclass(frozen=True)
class TrackedJob:
    namespace: str
    name: str
    uid: str
    resource_version: str
    created: datetime
    spec: JobSpec
    status: JobStatus | None
    #: A finished job's record without params, result or attempt history (see ``slimmed``).
    slim: bool = False
    #: ``metadata.generation``: what a status written from this view has observed.
    generation: int | None = None
    #: The run asked for: spec.runGeneration or the rerun annotation, the higher.
    requested_run: int = 0

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> TrackedJob:
        job = Job.model_validate(obj)
        meta = obj["metadata"]
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            resource_version=meta["resourceVersion"],
            created=datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00")),
            spec=job.spec,
            status=job.status,
            generation=meta.get("generation"),
            requested_run=max(job.spec.run_generation, annotated_run(meta) or 0),
        )

    def slimmed(self) -> TrackedJob:
        """The record kept of a finished job: what its TTL, late reports and the pool's
        counts need, without the params, result and attempt history that make up most
        of a Job's size.  Never written back (``JobStore`` refuses it)."""
        if self.slim:
            return self
        status = self.status
        if status is not None:
            status = status.model_copy(
                update={"result": None, "attempts": [], "error": None, "progress": None}
            )
        spec = self.spec.model_copy(update={"params": {}})
        return replace(self, spec=spec, status=status, slim=True)

    @property
    def rerun_due(self) -> bool:
        """A finished job asked to run again (and not cancelled, which is for good)."""
        status = self.status
        return (
            status is not None
            and status.phase is not None
            and status.phase.is_terminal
            and not self.spec.cancel
            and self.requested_run > (status.run_generation or 0)
        )

    @property
    def order(self) -> tuple[datetime, str]:
        """Which of two Jobs came first (creation times are kept to the second)."""
        return (self.created, self.name)

    @property
    def pool_key(self) -> tuple[str, str]:
        return (self.namespace, self.spec.pool)

    @property
    def phase(self) -> str | None:
        return self.status.phase if self.status else None

    @property
    def attempt(self) -> int:
        return self.status.attempt if self.status else 0

    @property
    def ref(self) -> JobRef:
        return JobRef(namespace=self.namespace, name=self.name, uid=self.uid)

    def older_than(self, resource_version: str) -> bool:
        """resourceVersions are opaque, but etcd's are integers: compare when they are."""
        if resource_version.isdigit() and self.resource_version.isdigit():
            return int(resource_version) > int(self.resource_version)
        return resource_version != self.resource_version


def run_annotation_problem(obj: dict[str, Any]) -> str | None:
    """What is wrong with the Job's rerun annotation, for a warning Event; None if fine."""
    if annotated_run(obj.get("metadata") or {}) is not None:
        return None
    value = str(obj["metadata"]["annotations"][RUN_GENERATION_ANNOTATION])[:64]
    return (
        f"annotation {RUN_GENERATION_ANNOTATION}={value!r} is ignored: it must be a whole "
        f"number from 0 to {MAX_RUN_GENERATION} (kubectl shiftboss rerun sets it; or raise "
        "spec.runGeneration)"
    )
