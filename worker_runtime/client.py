"""``OperatorClient``: the worker side of the protocol in ``protocol.py``, over httpx.

One call is one request: the loops that use it own the retry policy (claims repeat
their ``request_id``, outcomes are re-sent with backoff, a heartbeat is retried by the
next beat; see ``docs/worker-protocol.md``).  Every failure becomes a typed error
(``errors.py``) that says whether the operator answered, is absent (connection refused,
503) or could not be reached otherwise.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from .errors import (
    AttemptNotCurrent,
    CertificateUntrusted,
    OperatorAbsent,
    OperatorUnavailable,
    ProtocolError,
    Unauthorized,
)
from .protocol import (
    Ack,
    ClaimRequest,
    ClaimResponse,
    CommandType,
    CompleteReport,
    ErrorResponse,
    FailReport,
    HeartbeatRequest,
    HeartbeatResponse,
    ProgressReport,
    RegisterRequest,
    RegisterResponse,
    ReleaseReport,
)
from .version import __version__

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
TokenSource = Callable[[], str]
#: What an attempt ends with: exactly one of these is delivered per attempt.
Outcome = CompleteReport | FailReport | ReleaseReport


class OperatorClient:
    """Async client of the operator's worker API; use it as ``async with`` or ``aclose()``.

    ``token`` is called before every request (projected tokens rotate on disk).
    ``verify`` is an ``ssl.SSLContext`` trusting the operator's CA (``WorkerConfig.
    tls_verify()``), or True for the system's CAs.  ``transport`` replaces the network.
    """

    def __init__(
        self,
        base_url: str,
        token: TokenSource | None = None,
        *,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._token = token
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            verify=verify,
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
            f"{_worker_path(worker_id)}/claim",
            request,
            ClaimResponse,
            timeout=request.wait_seconds + self._timeout,
        )

    async def heartbeat(
        self, worker_id: str, request: HeartbeatRequest, *, timeout: float | None = None
    ) -> HeartbeatResponse:
        path = f"{_worker_path(worker_id)}/heartbeat"
        return await self._post(
            path, request, HeartbeatResponse, timeout=timeout, prepare=_known_commands
        )

    async def progress(self, attempt_id: str, report: ProgressReport) -> Ack:
        return await self._post(_attempt_path(attempt_id, "progress"), report, Ack)

    async def complete(self, attempt_id: str, report: CompleteReport) -> Ack:
        return await self._post(_attempt_path(attempt_id, "complete"), report, Ack)

    async def fail(self, attempt_id: str, report: FailReport) -> Ack:
        return await self._post(_attempt_path(attempt_id, "fail"), report, Ack)

    async def release(self, attempt_id: str, report: ReleaseReport) -> Ack:
        return await self._post(_attempt_path(attempt_id, "release"), report, Ack)

    async def report(self, attempt_id: str, outcome: Outcome) -> Ack:
        """Send an attempt's outcome to the endpoint that matches its kind."""
        if isinstance(outcome, CompleteReport):
            return await self.complete(attempt_id, outcome)
        if isinstance(outcome, FailReport):
            return await self.fail(attempt_id, outcome)
        return await self.release(attempt_id, outcome)

    async def _post(
        self,
        path: str,
        body: BaseModel,
        response_model: type[M],
        *,
        timeout: float | None = None,
        prepare: Callable[[Any], Any] | None = None,
    ) -> M:
        headers = {"Content-Type": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token()}"
        try:
            response = await self._http.post(
                path,
                content=body.model_dump_json(),
                headers=headers,
                timeout=timeout or self._timeout,
            )
        except httpx.TransportError as exc:
            raise _transport_error(path, exc) from None
        status = response.status_code
        if status == 503 or status == 429 or status >= 500:
            kind = OperatorAbsent if status == 503 else OperatorUnavailable
            message = f"POST {path}: HTTP {status}: {_error_message(response)}"
            raise kind(message, retry_after=_retry_after(response))
        return _parse(response, response_model, prepare)


def _known_commands(data: Any) -> Any:
    """Leave out commands of a type this runtime does not know (a newer operator's)."""
    if isinstance(data, dict) and isinstance(data.get("commands"), list):
        known = {t.value for t in CommandType}
        for command in data["commands"]:
            if isinstance(command, dict) and command.get("type") not in known:
                log.warning("ignoring a command this runtime does not know: %s", command)
        data["commands"] = [
            c for c in data["commands"] if not isinstance(c, dict) or c.get("type") in known
        ]
    return data


def _worker_path(worker_id: str) -> str:
    return f"/v1/workers/{quote(worker_id, safe='')}"


def _attempt_path(attempt_id: str, action: str) -> str:
    return f"/v1/attempts/{quote(attempt_id, safe='')}/{action}"


def _transport_error(path: str, exc: httpx.TransportError) -> OperatorUnavailable:
    causes = _causes(exc)
    untrusted = next((c for c in causes if isinstance(c, ssl.SSLCertVerificationError)), None)
    if untrusted is not None:
        return CertificateUntrusted(f"POST {path}: {untrusted.verify_message or untrusted}")
    problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return OperatorAbsent(f"POST {path}: connection refused")
    return OperatorUnavailable(f"POST {path}: {problem}")


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 16:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(max(float(response.headers.get("retry-after", "")), 0.0), 3600.0)
    except ValueError:
        return None  # absent, or an HTTP date: the caller's own backoff applies


def _parse(
    response: httpx.Response, model: type[M], prepare: Callable[[Any], Any] | None = None
) -> M:
    status = response.status_code
    if 200 <= status < 300:
        try:
            data = response.json()
            return validate_lenient(model, prepare(data) if prepare else data)
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


def _error_detail(response: httpx.Response) -> ErrorResponse | None:
    try:
        return validate_lenient(ErrorResponse, response.json())
    except (ValueError, ValidationError):
        return None


def _error_message(response: httpx.Response) -> str:
    detail = _error_detail(response)
    if detail is not None:
        field = f" (field {detail.error.field})" if detail.error.field else ""
        return f"{detail.error.message}{field}"
    return response.text.strip()[:500] or response.reason_phrase or "no details"


def _error_code(response: httpx.Response) -> str:
    detail = _error_detail(response)
    return detail.error.code if detail else ""
