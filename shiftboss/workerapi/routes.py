"""The worker protocol's HTTP handlers (models in ``worker_runtime.protocol``, rules in
``docs/worker-protocol.md``), plus ``/healthz``, ``/readyz`` and ``/metrics``; the
submission API's (``submissions``) and the read views' (``views``) routes join them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shiftboss import metrics
from shiftboss.jobs.dispatcher import Dispatcher
from shiftboss.workerapi.access import Access, PoolLookup
from shiftboss.workerapi.bodies import parse, reply
from shiftboss.workerapi.problems import ApiProblem, errors_middleware
from shiftboss.workerapi.submissions import SubmissionApi
from shiftboss.workerapi.views import ReadViews
from shiftboss.workers.auth import Authenticator
from shiftboss.workers.limits import (
    RegistrationLimits,
    check_registration,
    rate_limited,
    registration_limiter,
)
from shiftboss.workers.registry import WorkerRegistry
from worker_runtime.protocol import (
    MAX_REQUEST_BYTES,
    Ack,
    ClaimRequest,
    ClaimResponse,
    CompleteReport,
    FailReport,
    HeartbeatRequest,
    HeartbeatResponse,
    ProgressReport,
    RegisterRequest,
    RegisterResponse,
    ReleaseReport,
)

log = logging.getLogger("shiftboss.workerapi")


@dataclass(frozen=True)
class Timings:
    """What the registration answer tells workers (seconds)."""

    lease_seconds: float
    heartbeat_seconds: float
    cancel_grace_seconds: float


class WorkerApi:
    def __init__(
        self,
        *,
        auth: Authenticator,
        registry: WorkerRegistry,
        dispatcher: Dispatcher,
        pool_spec: PoolLookup,
        timings: Timings,
        limits: RegistrationLimits,
        on_register: Callable[[str, str], None],
        is_ready: Callable[[], bool],
        submissions: SubmissionApi,
        views: ReadViews,
    ) -> None:
        self.registry, self.dispatcher, self.pool_spec = registry, dispatcher, pool_spec
        self.timings, self.limits = timings, limits
        self.on_register, self.is_ready = on_register, is_ready
        self.access = Access(auth, registry, pool_spec, dispatcher.lease_holder)
        self.registrations = registration_limiter(limits)
        self.submissions, self.views = submissions, views

    def routes(self) -> web.Application:
        server = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[errors_middleware])
        server.router.add_post("/v1/workers/register", self.register)
        server.router.add_post("/v1/workers/{worker_id}/claim", self.claim)
        server.router.add_post("/v1/workers/{worker_id}/heartbeat", self.heartbeat)
        server.router.add_post("/v1/attempts/{attempt_id}/progress", self.progress)
        server.router.add_post("/v1/attempts/{attempt_id}/complete", self.complete)
        server.router.add_post("/v1/attempts/{attempt_id}/fail", self.fail)
        server.router.add_post("/v1/attempts/{attempt_id}/release", self.release)
        self.submissions.add_routes(server.router)
        self.views.add_routes(server.router)
        server.router.add_get("/healthz", self.healthz)
        server.router.add_get("/readyz", self.readyz)
        server.router.add_get("/metrics", self.metrics)
        return server

    # -- workers ------------------------------------------------------------------------

    async def register(self, request: web.Request) -> web.Response:
        identity = await self.access.identity(request)
        body = await parse(request, RegisterRequest)
        if self.pool_spec(identity.namespace, body.pool) is None:
            raise ApiProblem(
                404,
                "unknown_pool",
                f"no WorkerPool {body.pool!r} in namespace {identity.namespace!r}",
                "pool",
            )
        self.access.authorize_pool(identity, body.pool)
        if identity.pod_name is not None and identity.pod_name != body.worker_id:
            raise ApiProblem(
                403,
                "wrong_worker",
                f"this token belongs to worker {identity.pod_name!r}, not {body.worker_id!r}",
                "worker_id",
            )
        wait = self.registrations.try_acquire(identity.owner)
        if wait is not None:
            refusal = rate_limited(wait)
            raise ApiProblem(429, refusal.code, refusal.message, retry_after=wait)
        check_registration(body, self.limits)
        self.registry.register(identity.namespace, body, identity.owner)
        self.on_register(identity.namespace, body.pool)
        log.info(
            "worker %s/%s registered for pool %s with skills %s",
            identity.namespace,
            body.worker_id,
            body.pool,
            sorted(s.name for s in body.skills),
        )
        return reply(
            RegisterResponse(
                worker_id=body.worker_id,
                lease_seconds=self.timings.lease_seconds,
                heartbeat_interval_seconds=self.timings.heartbeat_seconds,
                cancel_grace_seconds=self.timings.cancel_grace_seconds,
            )
        )

    async def claim(self, request: web.Request) -> web.Response:
        worker = await self.access.worker(request)
        body = await parse(request, ClaimRequest)
        assignments = await self.dispatcher.claim(
            worker, body.max_attempts, body.wait_seconds, body.request_id
        )
        return reply(ClaimResponse(assignments=assignments))

    async def heartbeat(self, request: web.Request) -> web.Response:
        worker = await self.access.worker(request)
        body = await parse(request, HeartbeatRequest)
        commands = self.dispatcher.heartbeat(worker, body.attempt_ids, body.draining)
        return reply(HeartbeatResponse(commands=commands))

    # -- attempts -------------------------------------------------------------------------

    async def progress(self, request: web.Request) -> web.Response:
        worker = await self.access.attempt_worker(request)
        body = await parse(request, ProgressReport)
        await self.dispatcher.progress(worker, request.match_info["attempt_id"], body)
        return reply(Ack())

    async def complete(self, request: web.Request) -> web.Response:
        worker = await self.access.attempt_worker(request)
        body = await parse(request, CompleteReport)
        await self.dispatcher.complete(worker, request.match_info["attempt_id"], body.result)
        return reply(Ack())

    async def fail(self, request: web.Request) -> web.Response:
        worker = await self.access.attempt_worker(request)
        body = await parse(request, FailReport)
        await self.dispatcher.fail(worker, request.match_info["attempt_id"], body)
        return reply(Ack())

    async def release(self, request: web.Request) -> web.Response:
        worker = await self.access.attempt_worker(request)
        body = await parse(request, ReleaseReport)
        await self.dispatcher.release(worker, request.match_info["attempt_id"], body.reason)
        return reply(Ack())

    # -- health ---------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.is_ready()
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        metrics.refresh(self.dispatcher.book, self.registry, time.time())
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
