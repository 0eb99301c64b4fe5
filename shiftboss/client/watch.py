"""Following one Job until it finishes: a watch from the resourceVersion last seen,
resumed when the server ends the stream, re-read when the resourceVersion is too old
(410 Gone) or after a transient failure (a broken connection, a 5xx while the API server
restarts), with backoff. Refusals that waiting cannot cure (403, 404) are raised."""

from __future__ import annotations

import asyncio

import httpx

from shiftboss.api.job import Job
from shiftboss.client.errors import JobNotFound
from shiftboss.client.runs import finished
from shiftboss.jobs.store import JOBS
from shiftboss.kube.client import ApiError, KubeClient
from shiftboss.kube.informer import GONE, Backoff

#: How long the API server keeps one watch open before the client opens the next.
WATCH_SECONDS = 240


class JobWatch:
    """``finished()`` returns the Job once it has ended the run it requests (a terminal
    phase of an earlier run does not count after a rerun); ``job`` is the latest version
    seen, also while it still runs (what a timed-out wait reports)."""

    def __init__(self, kube: KubeClient, job: Job, *, backoff: Backoff | None = None) -> None:
        self.kube, self.job = kube, job
        self.name, self.namespace = str(job.name), str(job.namespace)
        self.backoff = backoff or Backoff()
        self.resource_version: str = job.metadata.get("resourceVersion") or ""
        # No resourceVersion yet (a Job built, not read): read it before watching.
        self._stale = not self.resource_version

    @property
    def done(self) -> bool:
        return finished(self.job)

    async def finished(self) -> Job:
        while not self.done:
            try:
                if self._stale:
                    await self._read()
                else:
                    await self._watch()
            except ApiError as exc:
                if exc.status == GONE:
                    self._stale = True
                elif exc.status == 429 or exc.status >= 500:
                    await self._pause()
                else:
                    raise
            except (httpx.TransportError, httpx.DecodingError, ValueError):
                await self._pause()
        return self.job

    async def _read(self) -> None:
        self._seen(await self.kube.get(JOBS.path(self.namespace, self.name)))
        self._stale = False

    async def _watch(self) -> None:
        events = 0
        async for event in self.kube.watch(
            JOBS.path(self.namespace),
            resource_version=self.resource_version,
            timeout_seconds=WATCH_SECONDS,
            fieldSelector=f"metadata.name={self.name}",
        ):
            kind, obj = event["type"], event["object"]
            events += 1
            if kind == "ERROR":
                raise ApiError(
                    int(obj.get("code") or 500), obj.get("reason", ""), obj.get("message", "")
                )
            if kind == "DELETED":
                raise JobNotFound(
                    f"job {self.name} in namespace {self.namespace} was deleted before it finished",
                    404,
                    "NotFound",
                )
            if kind == "BOOKMARK":
                self.resource_version = obj["metadata"]["resourceVersion"]
                continue
            self._seen(obj)
            if self.done:
                return
        if not events:
            # A stream that ended at once (a proxy's idle timeout): do not spin.
            await self._pause()

    def _seen(self, obj: dict[str, object]) -> None:
        self.job = Job.model_validate(obj)
        self.resource_version = self.job.metadata["resourceVersion"]
        self.backoff.reset()

    async def _pause(self) -> None:
        """After a transient failure: wait, then re-read (changes may have been missed)."""
        await asyncio.sleep(self.backoff.next())
        self._stale = True
