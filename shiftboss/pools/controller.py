"""WorkerPool reconciliation: level-based, one loop per pool.

Any event about a pool, its pods or its jobs marks the pool dirty; its loop then
lists the pool's pods, asks the pure planner (``plan``) what to create and delete,
does it, and writes the pool's status if it changed.  This module is the only
writer of WorkerPool status and of worker pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import httpx

from shiftboss.api.common import API_GROUP, API_VERSION, utcnow
from shiftboss.api.workerpool import WorkerPool, WorkerPoolSpec
from shiftboss.kube.client import PODS, ApiError, KubeClient, Resource
from shiftboss.kube.events import EventRecorder
from shiftboss.pools.plan import PodView, plan, pool_status, status_changed
from shiftboss.pools.pods import POOL_LABEL, template_hash, worker_pod

log = logging.getLogger("shiftboss.pools")

WORKERPOOLS = Resource(API_GROUP, API_VERSION, "workerpools")
#: A pool is reconciled at most this often (seconds): events in bursts coalesce.
DEBOUNCE_SECONDS = 0.3
#: Every pool is reconciled at least this often, even without events (seconds).
RESYNC_SECONDS = 10.0


class PoolController:
    def __init__(
        self,
        client: KubeClient,
        events: EventRecorder,
        *,
        operator_url: str,
        queued: Callable[[str, str], int],
        running: Callable[[str, str], int],
        busy_workers: Callable[[str], set[str]],
    ) -> None:
        self.client, self.events, self.operator_url = client, events, operator_url
        self.queued, self.running, self.busy_workers = queued, running, busy_workers
        self.pools: dict[tuple[str, str], WorkerPool] = {}
        self._dirty: dict[tuple[str, str], asyncio.Event] = {}
        self._loops: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._problems: dict[tuple[str, str], str] = {}
        self._started = False
        self.status_writes = 0

    # -- inputs -------------------------------------------------------------------------

    def observe(self, obj: dict[str, Any], *, deleted: bool = False) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if deleted:
            self.pools.pop(key, None)
            task = self._loops.pop(key, None)
            if task:
                task.cancel()
            self._dirty.pop(key, None)
            return  # the garbage collector deletes the pods it owned
        try:
            self.pools[key] = WorkerPool.model_validate(obj)
        except ValueError as exc:
            log.error("WorkerPool %s/%s is invalid, ignored: %s", *key, exc)
            return
        self.trigger(*key)

    def start(self) -> None:
        """Start reconciling the pools observed so far, and every pool observed later.

        Until then ``observe`` only takes pools in: the operator restores its jobs
        first, so that no busy worker looks idle to a scale-down.
        """
        self._started = True
        for key in list(self.pools):
            self.trigger(*key)

    def trigger(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key not in self.pools:
            return
        self._dirty.setdefault(key, asyncio.Event()).set()
        if self._started and (key not in self._loops or self._loops[key].done()):
            self._loops[key] = asyncio.create_task(self._loop(key))

    def spec(self, namespace: str, name: str) -> WorkerPoolSpec | None:
        pool = self.pools.get((namespace, name))
        return pool.spec if pool else None

    def why_waiting(self, namespace: str, name: str) -> str:
        """Why a job of this pool waits, for its status message."""
        spec = self.spec(namespace, name)
        if spec is None:
            return f"no WorkerPool {name!r} in namespace {namespace!r}: create it or fix spec.pool"
        if spec.paused:
            return f"pool {name} is paused (spec.paused): no job is dispatched until it resumes"
        return f"waiting for a worker of pool {name}"

    def is_paused(self, namespace: str, name: str) -> bool:
        spec = self.spec(namespace, name)
        return spec is None or spec.paused

    async def stop(self) -> None:
        for task in self._loops.values():
            task.cancel()
        await asyncio.gather(*self._loops.values(), return_exceptions=True)

    # -- the loop -----------------------------------------------------------------------

    async def _loop(self, key: tuple[str, str]) -> None:
        dirty = self._dirty[key]
        while key in self.pools:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dirty.wait(), RESYNC_SECONDS)
            dirty.clear()
            try:
                converged = await self.reconcile(key)
            except (ApiError, httpx.HTTPError) as exc:
                log.warning("pool %s/%s: reconcile failed, will retry: %s", *key, exc)
                converged = False
            except Exception:
                log.exception("pool %s/%s: reconcile failed", *key)
                converged = False
            if not converged and key not in self._problems:
                dirty.set()  # check again soon: pods were created or deleted
            # With a lasting problem (pods refused), the next try is the resync or a change.
            await asyncio.sleep(DEBOUNCE_SECONDS if converged else 1.0)

    async def reconcile(self, key: tuple[str, str]) -> bool:
        """One pass; True when nothing had to change."""
        pool = self.pools.get(key)
        if pool is None:
            return True
        namespace, name = key
        current_hash = template_hash(pool, self.operator_url)
        listing = await self.client.get(PODS.path(namespace), labelSelector=f"{POOL_LABEL}={name}")
        busy = self.busy_workers(namespace)
        views = [PodView.from_pod(p, busy) for p in listing.get("items", [])]
        todo = plan(
            0 if pool.metadata.get("deletionTimestamp") else pool.spec.replicas, current_hash, views
        )
        if not todo.noop:
            log.info("pool %s/%s: %s", namespace, name, todo.reason)
            await self._apply(pool, current_hash, todo.create, todo.delete)
        await self._write_status(pool, current_hash, views, busy)
        return todo.noop

    async def _apply(
        self, pool: WorkerPool, current_hash: str, create: int, delete: tuple[str, ...]
    ) -> None:
        key = (pool.namespace or "", pool.name or "")
        manifest = worker_pod(pool, operator_url=self.operator_url, template_hash=current_hash)
        try:
            for _ in range(create):
                await self.client.create(PODS.path(key[0]), manifest)
            self._problems.pop(key, None)
        except ApiError as exc:
            if exc.status in (400, 403, 404, 422):
                # Permanent until someone changes something: say so instead of looping hot.
                message = f"cannot create worker pods: {exc.message}"
                if self._problems.get(key) != message:
                    self.events.record(
                        kind="WorkerPool",
                        namespace=key[0],
                        name=key[1],
                        uid=pool.uid or "",
                        reason="PodCreateFailed",
                        message=message,
                        warning=True,
                    )
                self._problems[key] = message
            else:
                raise
        for pod_name in delete:
            # The pod's grace period is the pool's drain timeout: a busy worker finishes first.
            with contextlib.suppress(ApiError):
                await self.client.delete(PODS.path(key[0], pod_name))

    async def _write_status(
        self, pool: WorkerPool, current_hash: str, views: list[PodView], busy: set[str]
    ) -> None:
        namespace, name = pool.namespace or "", pool.name or ""
        pod_names = {v.name for v in views}
        status = pool_status(
            pool,
            template_hash=current_hash,
            pods=views,
            queued_jobs=self.queued(namespace, name),
            running_jobs=self.running(namespace, name),
            busy_workers=len(busy & pod_names),
            now=utcnow(),
        )
        problem = self._problems.get((namespace, name))
        if problem:
            for condition in status.conditions:
                if condition.type == "Degraded":
                    condition.status, condition.reason, condition.message = (
                        "True",
                        "PodCreateFailed",
                        problem,
                    )
        if not status_changed(pool.status, status):
            return
        body = {"status": status.model_dump(by_alias=True, mode="json", exclude_none=True)}
        try:
            obj = await self.client.patch(WORKERPOOLS.path(namespace, name, "status"), body)
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        self.status_writes += 1
        if (namespace, name) in self.pools:
            self.pools[(namespace, name)] = WorkerPool.model_validate(obj)
