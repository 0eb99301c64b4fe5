"""REST verbs against the Kubernetes API, with typed errors.

Paths are built by ``Resource`` so that callers never concatenate URLs by hand.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from shiftboss.kube.config import KubeConfig
from shiftboss.kube.credentials import Credentials

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


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
    """One HTTP/2-less connection pool to the API server; use as an async context manager.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests)."""

    def __init__(
        self,
        config: KubeConfig,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.server,
            verify=config.ssl_context(),
            proxy=config.proxy,
            auth=KubeAuth(config),
            headers=[("Accept", "application/json"), *config.impersonation.headers()],
            timeout=httpx.Timeout(timeout, connect=10.0),
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
            transport=transport,
        )
        #: Number of mutating requests sent, for the "writes per job" measurement.
        self.writes = 0

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        if method != "GET":
            self.writes += 1
        response = await self._http.request(
            method,
            path,
            params={k: v for k, v in (params or {}).items() if v is not None},
            content=None if body is None else json.dumps(body),
            headers={"Content-Type": content_type} if body is not None else None,
        )
        if response.status_code >= 400:
            raise self._error(response.status_code, response.content)
        return response.json() if response.content else {}

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        return await self.request("GET", path, params=params)

    async def create(self, path: str, body: Any, **params: Any) -> dict[str, Any]:
        return await self.request("POST", path, body=body, params=params)

    async def replace(self, path: str, body: Any) -> dict[str, Any]:
        return await self.request("PUT", path, body=body)

    async def patch(
        self, path: str, body: Any, content_type: str = MERGE_PATCH, **params: Any
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH", path, body=body, content_type=content_type, params=params
        )

    async def delete(self, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        return await self.request("DELETE", path, body=body, params=params)

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
        async with self._http.stream("GET", path, params=query, timeout=timeout) as response:
            if response.status_code >= 400:
                raise self._error(response.status_code, await response.aread())
            async for line in response.aiter_lines():
                if line.strip():
                    yield json.loads(line)

    def _error(self, status: int, content: bytes) -> ApiError:
        error = _api_error(status, content)
        reason = self.config.credentials.last_error
        if status == 401 and reason is not None:
            # The server only says "Unauthorized"; say why the credentials were stale.
            error = ApiError(status, error.reason, f"{error.message} ({reason})")
        return error


def _api_error(status: int, content: bytes) -> ApiError:
    try:
        doc = json.loads(content)
        return ApiError(status, doc.get("reason", ""), doc.get("message", ""))
    except (ValueError, AttributeError):
        return ApiError(status, "", content[:500].decode(errors="replace"))
