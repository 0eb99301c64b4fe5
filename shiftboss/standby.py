"""What a standby replica serves on the operator's address while it waits for the Lease.

``/healthz`` answers 200 (the process is fine: a liveness probe must not kill a
standby), ``/readyz`` 200 with ``"standby": true`` (a standby is healthy and ready to
take over, so a Deployment of several replicas is fully Available for ``helm --wait``,
Argo CD and Flux), ``/metrics`` (``shiftboss_leader`` 0: a ServiceMonitor scrapes every
replica), and every ``/v1/...`` request 503 ``not_leader``, which workers treat as "the
operator is absent": they keep their work and retry (``docs/worker-protocol.md``).

Readiness therefore does not keep workers away from standbys: the worker API Service
also selects the label ``shiftboss.io/leader: "true"``, which only the leader's pod
carries (``shiftboss.ownpod``).  The leader's own ``/readyz`` carries no ``standby`` key.
"""

from __future__ import annotations

import logging
import ssl
from typing import TypedDict

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shiftboss import metrics
from worker_runtime.protocol import ErrorDetail, ErrorResponse

log = logging.getLogger("shiftboss.standby")

STANDBY_MESSAGE = (
    "this operator replica is a standby: it serves once it holds the leader Lease; "
    "retry (the leader, or this replica after a take-over, will answer)"
)


class StandbyError(Exception):
    """The standby's server could not start (the address is in use)."""


class StandbyReadiness(TypedDict):
    ready: bool
    standby: bool
    message: str


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _readyz(request: web.Request) -> web.Response:
    body = StandbyReadiness(ready=True, standby=True, message=STANDBY_MESSAGE)
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    # Scraped like the leader (a ServiceMonitor selects every replica): shiftboss_leader 0.
    return web.Response(
        body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def _not_leader(request: web.Request) -> web.Response:
    body = ErrorResponse(error=ErrorDetail(code="not_leader", message=STANDBY_MESSAGE))
    return web.json_response(body.model_dump(exclude_none=True), status=503)


class StandbyServer:
    """The standby's HTTP server; an async context manager (serving inside it).

    Give it the worker API's address and TLS context (``App.tls``): a standby serves
    the same scheme on the same address as the leader it may become.
    """

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host, self.port, self.ssl_context = host, port, ssl_context
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/readyz", _readyz)
        app.router.add_get("/metrics", _metrics)
        app.router.add_route("*", "/v1/{path:.*}", _not_leader)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, ssl_context=self.ssl_context).start()
        except OSError as exc:
            await runner.cleanup()
            raise StandbyError(
                f"--host/--port: cannot serve on {self.host}:{self.port}: {exc}"
            ) from exc
        self._runner = runner
        log.info(
            "standing by: /healthz, /readyz (200, standby) and /v1 (503) on %s:%d",
            self.host,
            self.port,
        )

    async def stop(self) -> None:
        """Free the port (idempotent), so that the leader's own server can bind it."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> StandbyServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
