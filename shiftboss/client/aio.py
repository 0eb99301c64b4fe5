"""``AsyncClient``: submit Jobs, wait for their results, cancel, get, list, re-run,
suspend and resume them through the Kubernetes API with the caller's own credentials (kubeconfig, exec plugins,
or a pod's service account), so RBAC decides what a caller may do."""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Unpack

import httpx

from shiftboss.api.job import RUN_GENERATION_ANNOTATION, Job, JobPhase
from shiftboss.client.errors import Verb, WaitTimeout, request_error
from shiftboss.client.jobs import (
    JobOptions,
    Params,
    build_job,
    field_selector,
    label_selector,
    manifest,
    outcome,
)
from shiftboss.client.runs import check_rerun, finished, next_run
from shiftboss.client.watch import JobWatch
from shiftboss.jobs.store import JOBS
from shiftboss.kube.client import MERGE_PATCH, ApiError, KubeClient
from shiftboss.kube.config import KubeConfig

#: Jobs per page of a list.
PAGE_SIZE = 500
#: Tries of ``rerun``'s conditional patch when the Job changes between read and write.
RERUN_TRIES = 5


def load_config(kubeconfig: str | os.PathLike[str] | None, context: str | None) -> KubeConfig:
    """``kubeconfig`` (else ``KUBECONFIG``, else in-cluster, else ``~/.kube/config``), at
    ``context`` (else its current context). May run an exec credential plugin."""
    if context is None:
        return KubeConfig.load(kubeconfig)
    if kubeconfig:
        return KubeConfig.from_file(kubeconfig, context)
    paths = os.environ.get("KUBECONFIG", "").split(os.pathsep)
    return KubeConfig.from_files([p for p in paths if p] or [Path.home() / ".kube/config"], context)


class AsyncClient:
    """Use as ``async with AsyncClient(namespace="team-a") as sb:``.

    ``namespace`` defaults to the kubeconfig context's (in a pod: the pod's own);
    ``kubeconfig`` and ``context`` choose the credentials as kubectl's flags do;
    ``config`` passes a loaded ``KubeConfig`` instead; ``transport`` replaces the network
    (``httpx.MockTransport`` in tests). The credentials are loaded (in a thread: an exec
    plugin may run) on entering, or on the first call.
    """

    def __init__(
        self,
        namespace: str | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        config: KubeConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._namespace, self._config = namespace, config
        self._kubeconfig, self._context, self._transport = kubeconfig, context, transport
        self._kube: KubeClient | None = None
        self._opening = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        await self._client()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; the client may not be used afterwards."""
        if self._kube is not None:
            await self._kube.close()

    @property
    def namespace(self) -> str:
        """The namespace of the Jobs this client submits and reads."""
        if self._namespace is None:
            raise RuntimeError("the namespace is known once the client is open: `async with` it")
        return self._namespace

    async def _client(self) -> KubeClient:
        async with self._opening:
            if self._kube is None:
                config = self._config
                if config is None:
                    config = await asyncio.to_thread(load_config, self._kubeconfig, self._context)
                self._namespace = self._namespace or config.namespace
                self._kube = KubeClient(config, transport=self._transport)
        return self._kube

    async def _call(self, verb: Verb, name: str | None, method: str, path: str, **kw: Any) -> Job:
        kube = await self._client()
        try:
            return Job.model_validate(await kube.request(method, path, **kw))
        except ApiError as exc:
            raise request_error(exc, verb, self.namespace, name) from None

    # -- the verbs ----------------------------------------------------------------------

    async def submit(
        self, pool: str, skill: str, params: Params | None = None, **options: Unpack[JobOptions]
    ) -> Job:
        """Create a Job running ``skill`` on ``pool`` with ``params``; return it as
        created (``.name`` is its name). See ``JobOptions`` for the rest."""
        job = build_job(pool, skill, params, **options)
        await self._client()
        return await self._call(
            "create", job.name, "POST", JOBS.path(self.namespace), body=manifest(job)
        )

    async def get(self, name: str) -> Job:
        """The Job ``name``; ``JobNotFound`` when there is none."""
        await self._client()
        return await self._call("get", name, "GET", JOBS.path(self.namespace, name))

    async def cancel(self, name: str) -> Job:
        """Ask the operator to cancel the Job (``spec.cancel: true``) and return it; a
        running attempt is told to stop. ``wait`` then raises ``JobCancelled`` (or returns
        the result if the job finished first)."""
        await self._client()
        path = JOBS.path(self.namespace, name)
        body = {"spec": {"cancel": True}}
        return await self._call("patch", name, "PATCH", path, body=body, content_type=MERGE_PATCH)

    async def rerun(self, name: str) -> Job:
        """Run the finished Job ``name`` again, keeping its name and spec: raise its
        ``shiftboss.io/run-generation`` annotation (spec is left alone, so a GitOps tool
        sees no drift); the operator then starts a fresh run, the previous one summarised
        in ``status.runs``. Returns the Job as patched: ``wait`` on it waits for the new
        run. ``JobNotFinished`` while it still waits or runs (or a requested run has not
        finished), ``JobCannotRunAgain`` once it was cancelled; nothing changes then."""
        kube = await self._client()
        path = JOBS.path(self.namespace, name)
        for tries_left in reversed(range(RERUN_TRIES)):
            job = await self.get(name)
            check_rerun(job)
            # Conditional on the version read: a concurrent rerun (or a new run starting)
            # makes it fail with 409, and the decision is taken again on a fresh read.
            metadata = {
                "resourceVersion": job.metadata["resourceVersion"],
                "annotations": {RUN_GENERATION_ANNOTATION: str(next_run(job))},
            }
            try:
                answer = await kube.request(
                    "PATCH", path, body={"metadata": metadata}, content_type=MERGE_PATCH
                )
            except ApiError as exc:
                if exc.conflict and tries_left:
                    continue
                raise request_error(exc, "patch", self.namespace, name) from None
            return Job.model_validate(answer)
        raise AssertionError("unreachable: the last try returns or raises")

    async def suspend(self, name: str) -> Job:
        """Hold the Job (``spec.suspend: true``) and return it: a waiting job leaves its
        pool's queue (phase ``Suspended``); a running attempt finishes first."""
        return await self._set_suspend(name, True)

    async def resume(self, name: str) -> Job:
        """Let a suspended Job run again (``spec.suspend: false``) and return it."""
        return await self._set_suspend(name, False)

    async def _set_suspend(self, name: str, suspend: bool) -> Job:
        await self._client()
        path = JOBS.path(self.namespace, name)
        body = {"spec": {"suspend": suspend}}
        return await self._call("patch", name, "PATCH", path, body=body, content_type=MERGE_PATCH)

    async def list(
        self,
        pool: str | None = None,
        phase: JobPhase | str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> builtins.list[Job]:
        """The namespace's Jobs, of one pool, phase or set of labels if given."""
        kube = await self._client()
        params: dict[str, Any] = {
            "fieldSelector": field_selector(pool, phase),
            "labelSelector": label_selector(labels),
            "limit": PAGE_SIZE,
        }
        jobs: builtins.list[Job] = []
        while True:
            try:
                page = await kube.request("GET", JOBS.path(self.namespace), params=params)
            except ApiError as exc:
                raise request_error(exc, "list", self.namespace, None) from None
            jobs += [Job.model_validate(item) for item in page.get("items") or ()]
            params["continue"] = (page.get("metadata") or {}).get("continue")
            if not params["continue"]:
                return jobs

    async def wait(self, job: Job | str, timeout: float | None = None) -> Any:
        """The result of the job (a Job or its name) once it has finished the run it
        requests (after ``rerun``: the new run): what the skill returned, or ``JobFailed``
        / ``JobCancelled``. ``timeout`` (seconds, overall):
        ``WaitTimeout`` when it has not finished by then; the job keeps running."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        return await self._wait(job, timeout, deadline)

    async def run(
        self,
        pool: str,
        skill: str,
        params: Params | None = None,
        *,
        timeout: float | None = None,
        **options: Unpack[JobOptions],
    ) -> Any:
        """``submit`` then ``wait``: the skill's result. ``timeout`` counts from this
        call; on ``WaitTimeout`` the job keeps running (its name is in the error)."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        job = await self.submit(pool, skill, params, **options)
        return await self._wait(job, timeout, deadline)

    async def _wait(self, job: Job | str, timeout: float | None, deadline: float | None) -> Any:
        if isinstance(job, str) or finished(job):
            # A finished copy may predate a rerun: only a fresh read says which run ended.
            job = await self.get(job if isinstance(job, str) else str(job.name))
        watch = JobWatch(await self._client(), job)
        try:
            async with asyncio.timeout_at(deadline):
                ended = await watch.finished()
        except TimeoutError:
            if timeout is None:
                raise
            raise WaitTimeout(watch.job, timeout) from None
        except ApiError as exc:
            raise request_error(exc, "watch", self.namespace, watch.name) from None
        return outcome(ended)
