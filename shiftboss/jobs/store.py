"""The one place that writes a Job's status.

Every write carries the resourceVersion the decision was based on (optimistic
concurrency): if the Job changed meanwhile (a worker report raced a lease expiry, or
someone set ``spec.cancel``), the API server answers 409 and the caller re-reads and
re-decides.  That is what makes "a job can never succeed twice" hold.
"""

from __future__ import annotations

from typing import Any, Literal

from shiftboss.api.common import API_GROUP, API_VERSION
from shiftboss.api.job import JobStatus
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.kube.client import ApiError, KubeClient, Resource
from shiftboss.kube.flow import Priority

JOBS = Resource(API_GROUP, API_VERSION, "jobs")


class StaleJob(Exception):
    """The Job changed since it was read; re-read it and decide again."""


class JobGone(Exception):
    """The Job was deleted."""


#: The store's calls, as its errors are mapped.
Operation = Literal["write", "read", "delete"]


def store_error(op: Operation, error: ApiError) -> BaseException | None:
    """What ``JobStore`` raises when the API server answers ``error`` to ``op``: a 409 to
    a write is a stale decision, a 404 to a write or read a gone Job; a delete answered
    404 or 409 (the Job, or that Job by its uid, is gone already) is done (None)."""
    if op == "write" and error.conflict:
        return StaleJob(str(error))
    if op in ("write", "read") and error.not_found:
        return JobGone(str(error))
    if op == "delete" and (error.not_found or error.conflict):
        return None
    return error


class JobStore:
    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.status_writes = 0

    async def write_status(
        self, job: TrackedJob, status: JobStatus, priority: Priority = Priority.NORMAL
    ) -> TrackedJob:
        if job.slim:
            # A slim record lacks the result and history: writing it would erase them.
            raise ValueError(f"job {job.namespace}/{job.name} is finished: not written")
        # Every field is sent, None as null, so that merge-patch removes cleared fields.
        body: dict[str, Any] = {
            "metadata": {"resourceVersion": job.resource_version},
            "status": status.model_dump(by_alias=True, mode="json"),
        }
        try:
            obj = await self.client.patch(
                JOBS.path(job.namespace, job.name, "status"), body, priority=priority
            )
        except ApiError as exc:
            mapped = store_error("write", exc)
            if mapped is exc or mapped is None:
                raise
            raise mapped from exc
        self.status_writes += 1
        return TrackedJob.from_object(obj)

    async def read(self, namespace: str, name: str) -> TrackedJob:
        try:
            return TrackedJob.from_object(await self.client.get(JOBS.path(namespace, name)))
        except ApiError as exc:
            mapped = store_error("read", exc)
            if mapped is exc or mapped is None:
                raise
            raise mapped from exc

    async def delete(self, job: TrackedJob) -> None:
        try:
            await self.client.delete(
                JOBS.path(job.namespace, job.name),
                {
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "preconditions": {"uid": job.uid},
                    "propagationPolicy": "Background",
                },
                priority=Priority.BACKGROUND,
            )
        except ApiError as exc:
            mapped = store_error("delete", exc)
            if mapped is exc:
                raise
            if mapped is not None:
                raise mapped from exc
