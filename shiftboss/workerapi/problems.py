"""Every failure of the worker API is a JSON ``ErrorResponse`` with a precise status.

The middleware maps the exceptions of the layers below to statuses in one place: 4xx
for what the caller can fix, 409 for decisions already taken, 429 and 503 for "not
now, retry", and 500 only for the operator's own faults.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import httpx
from aiohttp import web

from shiftboss.jobs.errors import AttemptNotCurrent, JobBusy, ResultTooLarge, UnknownAttempt
from shiftboss.kube.client import ApiError
from shiftboss.workers.auth import AuthError, RateLimited
from shiftboss.workers.limits import LimitExceeded
from shiftboss.workers.registry import WorkerIdTaken
from worker_runtime.protocol import MAX_REQUEST_BYTES, ErrorDetail, ErrorResponse

log = logging.getLogger("shiftboss.workerapi")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiProblem(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.retry_after = retry_after


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message, field=field))
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after else None
    return web.json_response(body.model_dump(exclude_none=True), status=status, headers=headers)


def _problem(exc: BaseException) -> ApiProblem | None:
    """The answer for an exception of the layers below, or None for a fault of ours."""
    match exc:
        case ApiProblem():
            return exc
        case AuthError():
            return ApiProblem(401, "unauthenticated", str(exc))
        case RateLimited():
            return ApiProblem(429, "rate_limited", str(exc), retry_after=exc.retry_after)
        case AttemptNotCurrent():
            return ApiProblem(409, "attempt_not_current", str(exc))
        case UnknownAttempt():
            return ApiProblem(404, "unknown_attempt", str(exc))
        case ResultTooLarge():
            return ApiProblem(413, "result_too_large", str(exc), "result")
        case WorkerIdTaken():
            return ApiProblem(409, "worker_id_taken", str(exc), "worker_id")
        case LimitExceeded():
            return ApiProblem(exc.status, exc.code, exc.message, exc.field)
        case JobBusy():
            return ApiProblem(503, "job_busy", str(exc), retry_after=1)
        case web.HTTPRequestEntityTooLarge():
            return ApiProblem(413, "body_too_large", f"request body over {MAX_REQUEST_BYTES} bytes")
    return None


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        problem = _problem(exc)
        if problem is not None:
            return error_response(
                problem.status, problem.code, problem.message, problem.field, problem.retry_after
            )
        if isinstance(exc, web.HTTPException) and exc.status >= 400:
            return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if isinstance(exc, httpx.HTTPError) or (
            isinstance(exc, ApiError) and (exc.status >= 500 or exc.status == 429)
        ):
            # The API server is the database: while it is away, nothing can be decided.
            log.warning(
                "worker API: %s %s: Kubernetes API unavailable: %s",
                request.method,
                request.path,
                exc,
            )
            return error_response(
                503,
                "kubernetes_unavailable",
                "the Kubernetes API server did not answer; nothing was changed, retry shortly",
                retry_after=1,
            )
        if isinstance(exc, web.HTTPException):
            raise
        if isinstance(exc, ConnectionResetError):
            # The caller went away mid-request (a worker pod stopping): nothing to answer.
            log.info("worker API: %s %s: the caller went away", request.method, request.path)
            return error_response(400, "connection_lost", "the connection was lost")
        log.exception("worker API: unexpected error on %s %s", request.method, request.path)
        return error_response(
            500, "internal", "the operator failed to handle this request; see its log"
        )
