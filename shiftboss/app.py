"""The operator's parts, wired together: one object that the Kopf handlers close over."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from shiftboss import metrics
from shiftboss.jobs.dispatcher import Dispatcher, DispatchSettings
from shiftboss.jobs.store import JOBS, JobStore
from shiftboss.kube.client import KubeClient
from shiftboss.kube.config import KubeConfig
from shiftboss.kube.discovery import wait_for_resources
from shiftboss.kube.events import EventRecorder
from shiftboss.kube.informer import Informer, KubeObject
from shiftboss.kube.reviews import AccessReviewer
from shiftboss.pools.controller import WORKERPOOLS, PoolController
from shiftboss.settings import OperatorSettings
from shiftboss.workerapi import MAX_HEADER_BYTES, Timings, WorkerApi
from shiftboss.workerapi.submissions import SubmissionApi
from shiftboss.workerapi.views import ReadViews
from shiftboss.workers.auth import Authenticator
from shiftboss.workers.limits import RegistrationLimits
from shiftboss.workers.registry import WorkerRegistry

log = logging.getLogger("shiftboss")


class App:
    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self.client = KubeClient(KubeConfig.load(settings.kubeconfig))
        self.events = EventRecorder(self.client)
        self.store = JobStore(self.client)
        self.auth = Authenticator(self.client)
        # Forget a worker after several missed heartbeats (it re-registers if it was alive).
        self.limits = RegistrationLimits()
        self.registry = WorkerRegistry(
            forget_after_seconds=settings.lease_seconds * 4,
            limits=self.limits,
            # After a restart, running pools' workers re-register within the restore grace.
            warmup_seconds=settings.restore_grace,
        )
        self.dispatcher = Dispatcher(
            self.store,
            self.events,
            DispatchSettings(
                lease_seconds=settings.lease_seconds,
                heartbeat_seconds=settings.heartbeat_seconds,
                restore_grace_seconds=settings.restore_grace,
                cancel_grace_seconds=settings.cancel_grace_seconds,
                aging_seconds_per_level=settings.aging_seconds_per_level,
            ),
            is_paused=lambda ns, pool: self.pools.is_paused(ns, pool),
            why_blocked=lambda job: self.pools.why_blocked(
                job.namespace,
                job.spec.pool,
                job.spec.skill,
                self.registry.may_run(job.namespace, job.spec.pool, job.spec.skill),
            ),
        )
        self.pools = PoolController(
            self.client,
            self.events,
            operator_url=settings.advertised_url(),
            worker_ca_data=settings.worker_ca_data(),
            queued=self.dispatcher.queued_count,
            running=self.dispatcher.running_count,
            busy_workers=self.dispatcher.busy_workers,
            cancel_grace_seconds=settings.cancel_grace_seconds,
        )
        self.dispatcher.on_pool_change = self.pool_changed
        #: The Jobs' list+watch, one per namespace served (or one for all of them).
        self.job_informers = [
            Informer(
                self.client,
                JOBS,
                namespace,
                on_object=self.dispatcher.observe,
                on_deleted=self._job_deleted,
            )
            for namespace in self._scopes()
        ]
        self.tls = self._tls()  # early: a bad certificate stops `shiftboss run` with a message
        self.ready = False
        #: Awaited just before the worker API binds its address: under leader election
        #: the standby's server, which answered probes until now, frees it.
        self.before_listen: Callable[[], Awaitable[None]] | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _scopes(self) -> list[str | None]:
        return [*self.settings.namespaces] or [None]  # None: all of them

    def _job_deleted(self, obj: KubeObject) -> None:
        self.dispatcher.observe(obj, deleted=True)

    def pool_changed(self, namespace: str, pool: str) -> None:
        self.pools.trigger(namespace, pool)

    def worker_disrupted(self, namespace: str, worker_id: str, why: str) -> None:
        """The worker's pod is being deleted: what it loses now is not the job's fault."""
        self.dispatcher.worker_disrupted(namespace, worker_id, why)

    def worker_gone(self, namespace: str, worker_id: str) -> None:
        """The worker's pod ended: its leases end, its identity is reviewed afresh."""
        self.dispatcher.worker_gone(namespace, worker_id)
        self.registry.remove(namespace, worker_id)
        self.auth.forget_pod(namespace, worker_id)

    async def start(self) -> None:
        """Rebuild pools and queues from the API server, then serve the worker API.

        Jobs are restored before any pool is reconciled, so that a busy worker never
        looks idle and is picked for a scale-down; the worker API is served last, so that
        a worker re-registering after a restart never hears "unknown pool".
        """
        await wait_for_resources(self.client)
        for namespace in self._scopes():
            for item in (await self.client.get(WORKERPOOLS.path(namespace))).get("items", []):
                self.pools.observe(item)
        await self._restore_jobs()
        self.pools.start()
        api = WorkerApi(
            auth=self.auth,
            registry=self.registry,
            dispatcher=self.dispatcher,
            pool_spec=self.pools.spec,
            timings=Timings(
                lease_seconds=self.settings.lease_seconds,
                heartbeat_seconds=self.settings.heartbeat_seconds,
                cancel_grace_seconds=self.settings.cancel_grace_seconds,
            ),
            limits=self.limits,
            on_register=self.pool_changed,
            is_ready=lambda: self.ready,
            submissions=SubmissionApi(
                auth=self.auth,
                reviewer=AccessReviewer(self.client),
                kube=self.client,
                namespaces=self.settings.namespaces,
            ),
            views=ReadViews(
                book=self.dispatcher.book,
                workers=self.registry,
                pools=self.pools.pools,
                why_blocked=self.pools.why_blocked,
            ),
        )
        self._runner = web.AppRunner(
            api.routes(),
            access_log=None,
            max_field_size=MAX_HEADER_BYTES,
            max_line_size=MAX_HEADER_BYTES,
        )
        await self._runner.setup()
        if self.before_listen is not None:
            await self.before_listen()
        await web.TCPSite(
            self._runner, self.settings.host, self.settings.port, ssl_context=self.tls
        ).start()
        log.info(
            "worker API on %s:%d (workers use %s)",
            self.settings.host,
            self.settings.port,
            self.settings.advertised_url(),
        )
        self._tasks = [
            asyncio.create_task(self.dispatcher.run_timers()),
            asyncio.create_task(self._forget_silent_workers()),
        ]
        self.ready = True
        metrics.LEADER.set(1)

    async def _restore_jobs(self) -> None:
        """List the Jobs page by page into the dispatcher (each page is dropped once taken
        in), then keep watching them from the list's resourceVersion."""
        started = time.monotonic()
        for informer in self.job_informers:
            informer.start()
        await asyncio.gather(*(informer.synced() for informer in self.job_informers))
        log.info(
            "rebuilt state: %d pools, %d jobs (listed in %.2f s, %d pages)",
            len(self.pools.pools),
            sum(informer.stats.listed for informer in self.job_informers),
            time.monotonic() - started,
            sum(informer.stats.pages for informer in self.job_informers),
        )

    def _tls(self) -> ssl.SSLContext | None:
        if not self.settings.tls_cert_file or not self.settings.tls_key_file:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.settings.tls_cert_file, self.settings.tls_key_file)
        return context

    async def _forget_silent_workers(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds)
            for worker in self.registry.forget_silent():
                log.info(
                    "worker %s/%s forgotten (no heartbeat)", worker.namespace, worker.worker_id
                )
                self.pool_changed(worker.namespace, worker.pool)

    async def stop(self) -> None:
        self.ready = False
        metrics.LEADER.set(0)
        self.dispatcher.close()
        for task in self._tasks:
            task.cancel()
        # Stopped before this returns: a closed dispatcher is fed no more watch events.
        await asyncio.gather(*(informer.stop() for informer in self.job_informers))
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pools.stop()
        await self.events.flush()
        if self._runner:
            await self._runner.cleanup()
        await self.client.close()
