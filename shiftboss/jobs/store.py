"""The one place that writes a Job's status.

Every write carries the resourceVersion the decision was based on (optimistic
concurrency): if the Job changed meanwhile (a worker report raced a lease expiry, or
someone set ``spec.cancel``), the API server answers 409 and the caller re-reads and
re-decides.  That is what makes "a job can never succeed twice" hold.
"""

from __future__ import annotations

from typing import Any

from shiftboss.api.common import API_GROUP, API_VERSION
from shiftboss.api.job import JobStatus
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.kube.client import ApiError, KubeClient, Resource

JOBS = Resource(API_GROUP, API_VERSION, "jobs")


class StaleJob(Exception):
    """The Job changed since it was read; re-read it and decide again."""


class JobGone(Exception):
    """The Job was deleted."""


class JobStore:
    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.status_writes = 0

    async def write_status(self, job: TrackedJob, status: JobStatus) -> TrackedJob:
        # Every field is sent, None as null, so that merge-patch removes cleared fields.
        body: dict[str, Any] = {
            "metadata": {"resourceVersion": job.resource_version},
            "status": status.model_dump(by_alias=True, mode="json"),
        }
        try:
            obj = await self.client.patch(JOBS.path(job.namespace, job.name, "status"), body)
        except ApiError as exc:
            if exc.conflict:
                raise StaleJob(str(exc)) from exc
            if exc.not_found:
                raise JobGone(str(exc)) from exc
            raise
        self.status_writes += 1
        return TrackedJob.from_object(obj)

    async def read(self, namespace: str, name: str) -> TrackedJob:
        try:
            return TrackedJob.from_object(await self.client.get(JOBS.path(namespace, name)))
        except ApiError as exc:
            if exc.not_found:
                raise JobGone(str(exc)) from exc
            raise

    async def list(self, namespace: str | None = None) -> list[TrackedJob]:
        listing = await self.client.get(JOBS.path(namespace))
        return [TrackedJob.from_object(item) for item in listing.get("items", [])]

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
            )
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                raise
