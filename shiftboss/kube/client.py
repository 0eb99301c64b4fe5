"""REST verbs against the Kubernetes API, with typed errors.

Paths are built by ``Resource`` so that callers never concatenate URLs by hand.

Discipline towards the API server (the operator's throughput is bounded by it):

* **Requests** (every verb but a watch) pass a :class:`~shiftboss.kube.flow.PriorityGate`
  of ``max_in_flight`` slots, and their connection pool has exactly that many
  connections, all kept alive (no TLS handshake per burst). So a request waits in the
  operator's priority order, never inside the connection pool. Requests go over
  aiohttp's connections (``httpx-aiohttp``): httpcore's pool spends much of a busy
  operator's CPU on per-request bookkeeping, quadratic in the requests waiting.
* **Watches** hold their connection for minutes, so they are not counted against the
  gate (a few watches would otherwise take slots from claims for their whole life) and
  run over a second pool of their own. That pool has no connection cap: the number of
  watches is fixed by the code that opens them, not by load, and a cap would only turn
  one watch too many into a silent hang. Neither kind can starve the other of a
  connection.
* **429** (API Priority and Fairness refused the request before processing it, so any
  verb is safe to resend) is retried after ``Retry-After`` (capped, jittered), up to
  ``RETRIES_ON_429`` times, without holding a slot while sleeping. 5xx and timeouts are
  not retried here: a write whose answer was lost may have landed, and callers own
  those retries.
* JSON in both directions goes through orjson.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from httpx_aiohttp import AiohttpTransport

from shiftboss import metrics
from shiftboss.kube.config import KubeConfig
from shiftboss.kube.credentials import Credentials
from shiftboss.kube.flow import Priority, PriorityGate

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"

#: Requests in flight at once (and connections in the request pool). Measured against the
#: local control plane on two cores (Job creates and status merge-patches, 256 callers):
#: 8 gave the API server's best rate (about 270-480 creates/s, 250-350 patches/s; 4 and 16
#: no more), at 1.3-1.9 ms of client CPU per request, where 16 HTTP/1.1 connections cost
#: 1.7-2.9 ms and 32 cost 5-6 ms (httpcore's bookkeeping grows with the connections).
MAX_IN_FLIGHT = 8
#: Idle connections are kept this long: a lull between bursts must not cost handshakes.
KEEPALIVE_SECONDS = 300.0
#: Resends of a request the API server refused with 429, and the longest wait before one.
RETRIES_ON_429 = 5
MAX_RETRY_AFTER_SECONDS = 10.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0


class ApiError(Exception):
    """A non-2xx answer from the API server, with its Status reason and message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"


@dataclass(frozen=True)
class Resource:
    """A resource type: ``Resource("", "v1", "pods")`` or ``Resource("shiftboss.io", ...)``."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


PODS = Resource("", "v1", "pods")
NODES = Resource("", "v1", "nodes", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
SECRETS = Resource("", "v1", "secrets")
CONFIGMAPS = Resource("", "v1", "configmaps")
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts")
EVENTS = Resource("", "v1", "events")
LEASES = Resource("coordination.k8s.io", "v1", "leases")
TOKENREVIEWS = Resource("authentication.k8s.io", "v1", "tokenreviews", namespaced=False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)


class KubeAuth(httpx.Auth):
    """Sends each request with the config's current credentials (renewed when due, off
    the event loop) and TLS server name; after a 401 it renews them once and retries."""

    def __init__(self, config: KubeConfig) -> None:
        self.config = config

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self.config.tls_server_name:
            request.extensions["sni_hostname"] = self.config.tls_server_name
        credentials = await self.config.credentials.get()
        _authorize(request, credentials)
        response = yield request
        if response.status_code == 401:
            renewed = await self.config.credentials.after_unauthorized(credentials)
            if renewed is not None:
                _authorize(request, renewed)
                yield request


def _authorize(request: httpx.Request, credentials: Credentials) -> None:
    request.headers.pop("Authorization", None)
    if credentials.authorization:
        request.headers["Authorization"] = credentials.authorization


class KubeClient:
    """Connections to the API server (see the module docstring); use as an async context
    manager.

    ``max_in_flight`` bounds the requests sent at once; ``transport`` replaces the network
    (``httpx.MockTransport`` in tests).

    HTTP/1.1 only: HTTP/2 (httpx with h2) measured no faster at 8 in flight for the same
    CPU, and httpcore would set its ALPN list on ``config.ssl_context()``, which Kopf's
    aiohttp session shares and which cannot speak HTTP/2."""

    def __init__(
        self,
        config: KubeConfig,
        *,
        timeout: float = 30.0,
        max_in_flight: int = MAX_IN_FLIGHT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.gate = PriorityGate(max_in_flight)
        self._http = self._pool(max_in_flight, timeout, transport, keepalive=max_in_flight)
        self._streams = self._pool(None, timeout, transport, keepalive=4)
        #: Number of mutating requests sent, for the "writes per job" measurement.
        self.writes = 0

    def _pool(
        self,
        connections: int | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None,
        *,
        keepalive: int,
    ) -> httpx.AsyncClient:
        limits = httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=keepalive,
            keepalive_expiry=KEEPALIVE_SECONDS,
        )
        if transport is None and connections is not None:
            # Requests ride on aiohttp's connection handling (C-accelerated parsing, no
            # per-request pool bookkeeping): 22 % more jobs/s in a 3,000-job burst than
            # httpcore's pool.  Watches keep httpcore's, whose streaming is proven here.
            transport = AiohttpTransport(
                verify=self.config.ssl_context(),
                limits=limits,
                proxy=httpx.Proxy(self.config.proxy) if self.config.proxy else None,
            )
        return httpx.AsyncClient(
            base_url=self.config.server,
            verify=self.config.ssl_context(),
            proxy=self.config.proxy,
            auth=KubeAuth(self.config),
            headers=[("Accept", "application/json"), *self.config.impersonation.headers()],
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=limits,
            transport=transport,
        )

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered (watches not counted)."""
        return self.gate.in_flight

    @property
    def waiting(self) -> int:
        """Requests queued for a slot."""
        return self.gate.waiting

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()
        await self._streams.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        priority: Priority = Priority.NORMAL,
    ) -> dict[str, Any]:
        if method != "GET":
            self.writes += 1
        query = {k: v for k, v in (params or {}).items() if v is not None}
        content = None if body is None else orjson.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else None
        for retry in range(RETRIES_ON_429 + 1):
            async with self.gate.slot(priority):
                response = await self._http.request(
                    method, path, params=query, content=content, headers=headers
                )
            metrics.API_REQUESTS.labels(method, str(response.status_code)).inc()
            if response.status_code != 429 or retry == RETRIES_ON_429:
                break
            await asyncio.sleep(retry_after(response.headers.get("Retry-After")))
        if response.status_code >= 400:
            raise self._error(response.status_code, response.content)
        return orjson.loads(response.content) if response.content else {}

    async def get_text(self, path: str, **params: Any) -> str:
        """A GET whose answer is text, not JSON (a pod's log)."""
        query = {k: v for k, v in params.items() if v is not None}
        async with self.gate.slot(Priority.NORMAL):
            response = await self._http.get(path, params=query)
        metrics.API_REQUESTS.labels("GET", str(response.status_code)).inc()
        if response.status_code >= 400:
            raise self._error(response.status_code, response.content)
        return response.text

    async def get(
        self, path: str, *, priority: Priority = Priority.NORMAL, **params: Any
    ) -> dict[str, Any]:
        return await self.request("GET", path, params=params, priority=priority)

    async def create(
        self, path: str, body: Any, *, priority: Priority = Priority.NORMAL, **params: Any
    ) -> dict[str, Any]:
        return await self.request("POST", path, body=body, params=params, priority=priority)

    async def replace(
        self, path: str, body: Any, *, priority: Priority = Priority.NORMAL
    ) -> dict[str, Any]:
        return await self.request("PUT", path, body=body, priority=priority)

    async def patch(
        self,
        path: str,
        body: Any,
        content_type: str = MERGE_PATCH,
        *,
        priority: Priority = Priority.NORMAL,
        **params: Any,
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH", path, body=body, content_type=content_type, params=params, priority=priority
        )

    async def delete(
        self, path: str, body: Any = None, *, priority: Priority = Priority.NORMAL, **params: Any
    ) -> dict[str, Any]:
        return await self.request("DELETE", path, body=body, params=params, priority=priority)

    async def watch(
        self,
        path: str,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
        **params: Any,
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield watch events (``{"type": ..., "object": ...}``) until the server ends the stream."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": "true",
            **params,
        }
        query = {k: v for k, v in query.items() if v is not None}
        timeout = httpx.Timeout(timeout_seconds + 30, connect=10.0)
        async with self._streams.stream("GET", path, params=query, timeout=timeout) as response:
            metrics.API_REQUESTS.labels("WATCH", str(response.status_code)).inc()
            if response.status_code >= 400:
                raise self._error(response.status_code, await response.aread())
            pending = b""
            async for chunk in response.aiter_bytes():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield orjson.loads(line)
            if pending.strip():
                yield orjson.loads(pending)

    def _error(self, status: int, content: bytes) -> ApiError:
        error = _api_error(status, content)
        reason = self.config.credentials.last_error
        if status == 401 and reason is not None:
            # The server only says "Unauthorized"; say why the credentials were stale.
            error = ApiError(status, error.reason, f"{error.message} ({reason})")
        return error


def retry_after(header: str | None) -> float:
    """Seconds to wait before resending after a 429: the server's ``Retry-After`` (whole
    seconds; an HTTP date or garbage counts as absent), capped, plus up to 20 % jitter so
    that the requests refused together do not all come back together."""
    try:
        seconds = float(header) if header is not None else DEFAULT_RETRY_AFTER_SECONDS
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER_SECONDS
    if math.isnan(seconds):
        seconds = DEFAULT_RETRY_AFTER_SECONDS
    seconds = min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
    return seconds * random.uniform(1.0, 1.2)


def _api_error(status: int, content: bytes) -> ApiError:
    try:
        doc = orjson.loads(content)
        return ApiError(status, doc.get("reason", ""), doc.get("message", ""))
    except (ValueError, AttributeError):
        return ApiError(status, "", content[:500].decode(errors="replace"))
