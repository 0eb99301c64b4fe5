"""The HTTP server in the operator: the worker protocol under ``/v1`` (models in
``worker_runtime.protocol``) plus ``/healthz``, ``/readyz`` and ``/metrics``.

Every failure is an ``ErrorResponse`` with a 4xx status naming the problem (and the
field, for invalid bodies); a 5xx means a fault of the operator itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import httpx
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from shiftboss import metrics
from shiftboss.jobs.dispatcher import AttemptNotCurrent, ResultTooLarge, UnknownAttempt
from shiftboss.kube.client import ApiError
from shiftboss.workers.auth import AuthError, WorkerIdentity
from shiftboss.workers.registry import WorkerInfo
from worker_runtime.protocol import (
    MAX_REQUEST_BYTES,
    Ack,
    ClaimRequest,
    ClaimResponse,
    CompleteReport,
    ErrorDetail,
    ErrorResponse,
    FailReport,
    HeartbeatRequest,
    HeartbeatResponse,
    ProgressReport,
    RegisterRequest,
    RegisterResponse,
)

if TYPE_CHECKING:
    from shiftboss.app import App

log = logging.getLogger("shiftboss.workerapi")
#: Deeper JSON is refused: Kubernetes and pydantic both stop somewhere past a few hundred.
MAX_JSON_DEPTH = 64
#: aiohttp's default header limit (8190 bytes) answers in plain text; ours answers in JSON.
MAX_HEADER_BYTES = 32 * 1024
M = TypeVar("M", bound=BaseModel)


class ApiProblem(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, field=field))
    return web.json_response(body.model_dump(exclude_none=True), status=status)


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
):
    try:
        return await handler(request)
    except ApiProblem as exc:
        return _error(exc.status, exc.code, exc.message, exc.field)
    except AuthError as exc:
        return _error(401, "unauthenticated", str(exc))
    except AttemptNotCurrent as exc:
        return _error(409, "attempt_not_current", str(exc))
    except UnknownAttempt as exc:
        return _error(404, "unknown_attempt", str(exc))
    except ResultTooLarge as exc:
        return _error(413, "result_too_large", str(exc), "result")
    except (httpx.HTTPError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status < 500 and exc.status != 429:
            log.exception("worker API: the API server refused %s %s", request.method, request.path)
            return _error(
                500, "internal", "the operator failed to handle this request; see its log"
            )
        # The API server is the database: while it is away, nothing can be decided.
        log.warning(
            "worker API: %s %s: Kubernetes API unavailable: %s", request.method, request.path, exc
        )
        return _error(
            503,
            "kubernetes_unavailable",
            "the Kubernetes API server did not answer; nothing was changed, retry shortly",
        )
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "body_too_large", f"request body over {MAX_REQUEST_BYTES} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        raise
    except Exception:
        log.exception("worker API: unexpected error on %s %s", request.method, request.path)
        return _error(500, "internal", "the operator failed to handle this request; see its log")


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _depth(value: object) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk is what we guard against)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


async def parse(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise ApiProblem(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    try:
        data = json.loads(raw, parse_constant=_no_constants) if raw else {}
    except RecursionError as exc:
        raise ApiProblem(
            400, "malformed_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels"
        ) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiProblem(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
    if _depth(data) > MAX_JSON_DEPTH:
        raise ApiProblem(
            400, "malformed_json", f"the body nests deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise ApiProblem(
            422, "invalid_request", f"{where or 'body'}: {first['msg']}", where
        ) from exc


def reply(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json", exclude_none=True), status=status)


class WorkerApi:
    def __init__(self, app: App) -> None:
        self.app = app

    def routes(self) -> web.Application:
        server = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[errors_middleware])
        server.router.add_post("/v1/workers/register", self.register)
        server.router.add_post("/v1/workers/{worker_id}/claim", self.claim)
        server.router.add_post("/v1/workers/{worker_id}/heartbeat", self.heartbeat)
        server.router.add_post("/v1/attempts/{attempt_id}/progress", self.progress)
        server.router.add_post("/v1/attempts/{attempt_id}/complete", self.complete)
        server.router.add_post("/v1/attempts/{attempt_id}/fail", self.fail)
        server.router.add_get("/healthz", self.healthz)
        server.router.add_get("/readyz", self.readyz)
        server.router.add_get("/metrics", self.metrics)
        return server

    # -- identity ----------------------------------------------------------------------

    async def _identity(self, request: web.Request) -> WorkerIdentity:
        return await self.app.auth.identify(request.headers.get("Authorization"))

    def _authorize_pool(self, identity: WorkerIdentity, pool: str) -> None:
        if identity.pool is not None:
            if identity.pool != pool:
                raise ApiProblem(
                    403,
                    "wrong_pool",
                    f"this worker's pod belongs to pool {identity.pool!r}, not {pool!r}",
                    "pool",
                )
            return
        # A token not bound to a pod: the pool must run under the token's service account.
        spec = self.app.pools.spec(identity.namespace, pool)
        if spec is None or spec.service_account_name != identity.service_account:
            raise ApiProblem(
                403,
                "wrong_pool",
                f"service account {identity.namespace}/"
                f"{identity.service_account} may not act for pool {pool!r}",
                "pool",
            )

    async def _worker(self, request: web.Request) -> WorkerInfo:
        """The calling worker, as named in the path."""
        identity = await self._identity(request)
        return self._registered(identity, request.match_info["worker_id"])

    async def _attempt_worker(self, request: web.Request) -> WorkerInfo:
        """The worker reporting on an attempt: the token's pod, or the attempt's lease holder."""
        identity = await self._identity(request)
        attempt = request.match_info["attempt_id"]
        return self._registered(
            identity, identity.pod_name or self.app.dispatcher.lease_holder(attempt)
        )

    def _registered(self, identity: WorkerIdentity, worker_id: str) -> WorkerInfo:
        if identity.pod_name is not None and identity.pod_name != worker_id:
            raise ApiProblem(
                403, "wrong_worker", f"this token belongs to worker {identity.pod_name!r}"
            )
        worker = self.app.registry.get(identity.namespace, worker_id)
        if worker is None:
            raise ApiProblem(
                404,
                "worker_not_registered",
                f"worker {worker_id!r} is not registered (the operator may have restarted): "
                "register again",
            )
        self._authorize_pool(identity, worker.pool)
        return worker

    # -- handlers ----------------------------------------------------------------------

    async def register(self, request: web.Request) -> web.Response:
        identity = await self._identity(request)
        body = await parse(request, RegisterRequest)
        if self.app.pools.spec(identity.namespace, body.pool) is None:
            raise ApiProblem(
                404,
                "unknown_pool",
                f"no WorkerPool {body.pool!r} in namespace {identity.namespace!r}",
                "pool",
            )
        self._authorize_pool(identity, body.pool)
        if identity.pod_name is not None and identity.pod_name != body.worker_id:
            raise ApiProblem(
                403,
                "wrong_worker",
                f"this token belongs to worker {identity.pod_name!r}, not {body.worker_id!r}",
                "worker_id",
            )
        self.app.registry.register(identity.namespace, body)
        self.app.pool_changed(identity.namespace, body.pool)
        log.info(
            "worker %s/%s registered for pool %s with skills %s",
            identity.namespace,
            body.worker_id,
            body.pool,
            sorted(s.name for s in body.skills),
        )
        settings = self.app.settings
        return reply(
            RegisterResponse(
                worker_id=body.worker_id,
                lease_seconds=settings.lease_seconds,
                heartbeat_interval_seconds=settings.heartbeat_seconds,
            )
        )

    async def claim(self, request: web.Request) -> web.Response:
        worker = await self._worker(request)
        body = await parse(request, ClaimRequest)
        assignments = await self.app.dispatcher.claim(worker, body.max_attempts, body.wait_seconds)
        return reply(ClaimResponse(assignments=assignments))

    async def heartbeat(self, request: web.Request) -> web.Response:
        worker = await self._worker(request)
        body = await parse(request, HeartbeatRequest)
        commands = self.app.dispatcher.heartbeat(worker, body.attempt_ids, body.draining)
        return reply(HeartbeatResponse(commands=commands))

    async def progress(self, request: web.Request) -> web.Response:
        worker = await self._attempt_worker(request)
        body = await parse(request, ProgressReport)
        await self.app.dispatcher.progress(worker, request.match_info["attempt_id"], body)
        return reply(Ack())

    async def complete(self, request: web.Request) -> web.Response:
        worker = await self._attempt_worker(request)
        body = await parse(request, CompleteReport)
        await self.app.dispatcher.complete(worker, request.match_info["attempt_id"], body.result)
        return reply(Ack())

    async def fail(self, request: web.Request) -> web.Response:
        worker = await self._attempt_worker(request)
        body = await parse(request, FailReport)
        await self.app.dispatcher.fail(worker, request.match_info["attempt_id"], body)
        return reply(Ack())

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def readyz(self, request: web.Request) -> web.Response:
        ready = self.app.ready
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
