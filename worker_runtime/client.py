"""``OperatorClient``: the worker side of the protocol in ``protocol.py``, over httpx.

Transient trouble (transport errors, 5xx, 429) is retried with bounded exponential
backoff and jitter; everything else becomes a typed error the runner can act on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from .errors import AttemptNotCurrent, OperatorUnavailable, ProtocolError, Unauthorized
from .protocol import (
    Ack,
    ClaimRequest,
    ClaimResponse,
    CompleteReport,
    ErrorResponse,
    FailReport,
    HeartbeatRequest,
    HeartbeatResponse,
    ProgressReport,
    RegisterRequest,
    RegisterResponse,
)
from .version import __version__

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
TokenSource = Callable[[], str]


class OperatorClient:
    """Async client of the operator's worker API; use it as ``async with`` or ``aclose()``.

    ``token`` is called before every request (projected tokens rotate on disk).
    ``transport`` replaces the network, e.g. ``httpx.MockTransport`` in tests.
    """

    def __init__(
        self,
        base_url: str,
        token: TokenSource | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        retries: int = 4,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
    ) -> None:
        self._token = token
        self._timeout = timeout
        self._retries = max(0, retries)
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": f"shiftboss-worker-python/{__version__}"},
        )

    async def __aenter__(self) -> OperatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def register(self, request: RegisterRequest) -> RegisterResponse:
        return await self._post("/v1/workers/register", request, RegisterResponse)

    async def claim(self, worker_id: str, request: ClaimRequest) -> ClaimResponse:
        # A long poll: the operator may hold the request for wait_seconds.
        return await self._post(
            f"/v1/workers/{quote(worker_id, safe='')}/claim",
            request,
            ClaimResponse,
            timeout=request.wait_seconds + self._timeout,
        )

    async def heartbeat(self, worker_id: str, request: HeartbeatRequest) -> HeartbeatResponse:
        path = f"/v1/workers/{quote(worker_id, safe='')}/heartbeat"
        return await self._post(path, request, HeartbeatResponse)

    async def progress(self, attempt_id: str, report: ProgressReport) -> Ack:
        # Progress is advisory: one quick try, the next report supersedes it anyway.
        return await self._post(_attempt_path(attempt_id, "progress"), report, Ack, retries=0)

    async def complete(self, attempt_id: str, report: CompleteReport) -> Ack:
        return await self._post(_attempt_path(attempt_id, "complete"), report, Ack)

    async def fail(self, attempt_id: str, report: FailReport) -> Ack:
        return await self._post(_attempt_path(attempt_id, "fail"), report, Ack)

    async def _post(
        self,
        path: str,
        body: BaseModel,
        response_model: type[M],
        *,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> M:
        retries = self._retries if retries is None else retries
        content = body.model_dump_json()
        for attempt in range(retries + 1):
            headers = {"Content-Type": "application/json"}
            if self._token is not None:
                headers["Authorization"] = f"Bearer {self._token()}"
            try:
                response = await self._http.post(
                    path, content=content, headers=headers, timeout=timeout or self._timeout
                )
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return _parse(response, response_model)
                problem = f"HTTP {response.status_code}: {_error_message(response)}"
            if attempt == retries:
                raise OperatorUnavailable(f"POST {path} failed {attempt + 1} times: {problem}")
            delay = self._backoff(attempt)
            log.debug("POST %s failed (%s); retrying in %.2fs", path, problem, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        # "Equal jitter": never zero (no hammering), never in lockstep with other workers.
        ceiling = min(self._backoff_max, self._backoff_initial * 2**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _attempt_path(attempt_id: str, action: str) -> str:
    return f"/v1/attempts/{quote(attempt_id, safe='')}/{action}"


def _parse(response: httpx.Response, model: type[M]) -> M:
    status = response.status_code
    if 200 <= status < 300:
        try:
            return validate_lenient(model, response.json())
        except (ValueError, ValidationError) as exc:
            raise ProtocolError(
                f"the operator sent an invalid {model.__name__}: {exc}", status=status
            ) from None
    message = _error_message(response)
    code = _error_code(response)
    if status == 409:
        raise AttemptNotCurrent(message, status=status, code=code)
    if status in (401, 403):
        raise Unauthorized(message, status=status, code=code)
    raise ProtocolError(f"HTTP {status}: {message}", status=status, code=code)


def validate_lenient(model: type[M], data: Any) -> M:
    """Validate an answer, ignoring fields this runtime does not know.

    The protocol models forbid unknown fields so that client typos fail loudly; for
    answers that would make every deployed worker break the day the operator adds a
    field, so unknown fields in answers are dropped instead.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        if not errors or any(e["type"] != "extra_forbidden" for e in errors):
            raise
        for error in errors:
            *parents, key = error["loc"]
            target = data
            for step in parents:
                target = target[step]
            target.pop(key, None)
        return model.model_validate(data)


def _error_detail(response: httpx.Response) -> dict[str, Any] | None:
    try:
        return validate_lenient(ErrorResponse, response.json()).error.model_dump()
    except (ValueError, ValidationError):
        return None


def _error_message(response: httpx.Response) -> str:
    detail = _error_detail(response)
    if detail is not None:
        field = f" (field {detail['field']})" if detail.get("field") else ""
        return f"{detail['message']}{field}"
    return response.text.strip()[:500] or response.reason_phrase or "no details"


def _error_code(response: httpx.Response) -> str:
    detail = _error_detail(response)
    return detail["code"] if detail else ""
