"""WorkerPool reconciliation: level-based, one loop per pool.

Any event about a pool, its pods or its jobs marks the pool dirty; its loop then
lists the pool's pods, updates the pool's health (workers that exit on their own,
pods the API server refuses: both back off), asks the pure planner (``plan``) what to
create and delete, does it, and writes the pool's status if it changed.  This module
is the only writer of WorkerPool status and of worker pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from shiftboss.api.common import API_GROUP, API_VERSION, utcnow
from shiftboss.api.jobstatus import WaitReason
from shiftboss.api.workerpool import WorkerPool, WorkerPoolSpec
from shiftboss.jobs.events import Blocked
from shiftboss.kube.client import PODS, ApiError, KubeClient, Resource
from shiftboss.kube.events import EventRecorder
from shiftboss.kube.flow import Priority
from shiftboss.pools.health import (
    POD_CREATE_FAILED,
    WORKER_CRASH_LOOP,
    PoolHealth,
    Trouble,
    describe_exit,
    refused_message,
)
from shiftboss.pools.plan import Plan, plan
from shiftboss.pools.pods import (
    DEFAULT_CANCEL_GRACE_SECONDS,
    POOL_LABEL,
    template_hash,
    worker_pod,
)
from shiftboss.pools.podview import PodView
from shiftboss.pools.status import pool_status, status_changed

log = logging.getLogger("shiftboss.pools")

WORKERPOOLS = Resource(API_GROUP, API_VERSION, "workerpools")
#: A pool is reconciled at most this often (seconds): events in bursts coalesce.
DEBOUNCE_SECONDS = 0.3
#: Every pool is reconciled at least this often, even without events (seconds).
RESYNC_SECONDS = 10.0
#: After pods were created or deleted, or a pass failed, look again this soon (seconds).
RECHECK_SECONDS = 1.0

PoolKey = tuple[str, str]  # (namespace, name)


class PoolController:
    def __init__(
        self,
        client: KubeClient,
        events: EventRecorder,
        *,
        operator_url: str,
        worker_ca_data: str | None = None,
        queued: Callable[[str, str], int],
        running: Callable[[str, str], int],
        busy_workers: Callable[[str], set[str]],
        cancel_grace_seconds: float = DEFAULT_CANCEL_GRACE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.events, self.operator_url = client, events, operator_url
        #: The PEM CA bundle workers verify the operator with (SHIFTBOSS_CA_DATA), if any.
        self.worker_ca_data = worker_ca_data
        self.queued, self.running, self.busy_workers = queued, running, busy_workers
        self.cancel_grace_seconds = cancel_grace_seconds
        #: Wall-clock time (pod timestamps are wall-clock too).
        self.clock = clock
        self.pools: dict[PoolKey, WorkerPool] = {}
        self._health: dict[PoolKey, PoolHealth] = {}
        self._dirty: dict[PoolKey, asyncio.Event] = {}
        self._loops: dict[PoolKey, asyncio.Task[None]] = {}
        self._started = False
        self.status_writes = 0

    # -- inputs -------------------------------------------------------------------------

    def observe(self, obj: dict[str, Any], *, deleted: bool = False) -> None:
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if deleted:
            self.pools.pop(key, None)
            self._health.pop(key, None)
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

    def trouble(self, namespace: str, name: str) -> Trouble | None:
        """What holds the pool back now (its ``Degraded`` cause), if anything."""
        health = self._health.get((namespace, name))
        return health.trouble() if health else None

    def why_blocked(self, namespace: str, name: str, skill: str, offered: bool) -> Blocked | None:
        """Why a job of this pool for ``skill`` cannot be dispatched now, for its status
        and its Schedulable condition; None when a worker could take it (it only waits
        its turn)."""
        spec = self.spec(namespace, name)
        if spec is None:
            return Blocked(
                WaitReason.POOL_NOT_FOUND,
                f"no WorkerPool {name!r} in namespace {namespace!r}: create it or fix spec.pool",
            )
        if spec.paused:
            return Blocked(
                WaitReason.POOL_PAUSED,
                f"pool {name} is paused (spec.paused): no job is dispatched until it resumes",
            )
        if offered:
            return None
        trouble = self.trouble(namespace, name)
        if trouble is not None:
            return Blocked(
                WaitReason.POOL_DEGRADED,
                f"waiting for a worker of pool {name}, which is degraded: {trouble.message}",
            )
        pool = self.pools[(namespace, name)]
        if pool.status is None or pool.status.ready_replicas == 0:
            return Blocked(WaitReason.NO_READY_WORKER, f"waiting for a ready worker of pool {name}")
        return Blocked(
            WaitReason.NO_WORKER_WITH_SKILL,
            f"no worker of pool {name} offers skill {skill!r}: deploy workers that register "
            "it, or fix spec.skill",
        )

    def is_paused(self, namespace: str, name: str) -> bool:
        spec = self.spec(namespace, name)
        return spec is None or spec.paused

    async def stop(self) -> None:
        # No loop starts after this: the worker API and Kopf's handlers may still call
        # trigger() until they stop, and a loop started then would outlive the client.
        self._started = False
        for task in self._loops.values():
            task.cancel()
        await asyncio.gather(*self._loops.values(), return_exceptions=True)

    # -- the loop -----------------------------------------------------------------------

    async def _loop(self, key: PoolKey) -> None:
        dirty = self._dirty[key]
        recheck_at: float | None = None
        while key in self.pools:
            timeout = RESYNC_SECONDS
            if recheck_at is not None:
                timeout = min(timeout, max(0.0, recheck_at - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dirty.wait(), timeout)
            dirty.clear()
            try:
                recheck_at = await self.reconcile(key)
            except (ApiError, httpx.HTTPError) as exc:
                log.warning("pool %s/%s: reconcile failed, will retry: %s", *key, exc)
                recheck_at = self.clock() + RECHECK_SECONDS
            except Exception:
                log.exception("pool %s/%s: reconcile failed", *key)
                recheck_at = self.clock() + RECHECK_SECONDS
            await asyncio.sleep(DEBOUNCE_SECONDS)

    async def reconcile(self, key: PoolKey) -> float | None:
        """One pass; returns when to look again even without an event (None: at the
        resync): soon after pods were created or deleted, or when a back-off ends."""
        pool = self.pools.get(key)
        if pool is None:
            return None
        namespace, name = key
        now = self.clock()
        current_hash = template_hash(pool, self.operator_url, self.worker_ca_data)
        listing = await self.client.get(
            PODS.path(namespace), labelSelector=f"{POOL_LABEL}={name}", priority=Priority.BACKGROUND
        )
        busy = self.busy_workers(namespace)
        views = [PodView.from_pod(p, busy) for p in listing.get("items", [])]
        health = self._health.get(key, PoolHealth())
        health, exits = health.observe(views, current_hash, pool.generation, now)
        for exited in exits:
            self._warn(pool, WORKER_CRASH_LOOP, describe_exit(exited))
        desired = 0 if pool.metadata.get("deletionTimestamp") else pool.spec.replicas
        todo = plan(desired, current_hash, views, now=now, hold_until=health.hold_until)
        recheck_at = todo.recheck_at
        if not todo.noop:
            log.info("pool %s/%s: %s", namespace, name, todo.reason)
            health = await self._apply(pool, current_hash, todo, health, now)
            recheck_at = now + RECHECK_SECONDS  # their events may be slow or missed
        self._health[key] = health
        await self._write_status(pool, current_hash, views, busy, health.trouble())
        return recheck_at

    async def _apply(
        self, pool: WorkerPool, current_hash: str, todo: Plan, health: PoolHealth, now: float
    ) -> PoolHealth:
        namespace = pool.namespace or ""
        if todo.create:
            manifest = worker_pod(
                pool,
                operator_url=self.operator_url,
                template_hash=current_hash,
                ca_data=self.worker_ca_data,
                cancel_grace_seconds=self.cancel_grace_seconds,
            )
            try:
                for _ in range(todo.create):
                    await self.client.create(PODS.path(namespace), manifest)
            except ApiError as exc:
                if exc.already_exists:
                    raise  # a generated name was taken: an ordinary retry will do
                # A quota, a missing service account, an admission webhook...: retried
                # with a back-off, said once (an Event with a count), not every second.
                cause = exc.message or str(exc)
                message = refused_message(cause, manifest["metadata"]["generateName"])
                health = health.create_refused(message, now)
                self._warn(pool, POD_CREATE_FAILED, message)
            else:
                health = health.created()
        for pod_name in todo.delete:
            # No grace period is given: the pod's own terminationGracePeriodSeconds (the
            # pool's drain timeout plus the cancel grace and time to report) applies.
            try:
                await self.client.delete(PODS.path(namespace, pod_name))
            except ApiError as exc:
                if not exc.not_found:
                    log.warning(
                        "pool %s/%s: cannot delete pod %s: %s", namespace, pool.name, pod_name, exc
                    )
        return health

    def _warn(self, pool: WorkerPool, reason: str, message: str) -> None:
        log.warning("pool %s/%s: %s: %s", pool.namespace, pool.name, reason, message)
        self.events.record(
            kind="WorkerPool",
            namespace=pool.namespace or "",
            name=pool.name or "",
            uid=pool.uid or "",
            reason=reason,
            message=message,
            warning=True,
        )

    async def _write_status(
        self,
        pool: WorkerPool,
        current_hash: str,
        views: list[PodView],
        busy: set[str],
        trouble: Trouble | None,
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
            trouble=trouble,
            now=utcnow(),
        )
        if not status_changed(pool.status, status):
            return
        body = {"status": status.model_dump(by_alias=True, mode="json", exclude_none=True)}
        try:
            obj = await self.client.patch(
                WORKERPOOLS.path(namespace, name, "status"), body, priority=Priority.BACKGROUND
            )
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        self.status_writes += 1
        if (namespace, name) in self.pools:
            self.pools[(namespace, name)] = WorkerPool.model_validate(obj)
