"""A tiny HTTP server for probes and Prometheus: ``/healthz``, ``/readyz``, ``/metrics``.

asyncio streams instead of a web framework: the runtime's only dependencies are
httpx, pydantic and prometheus-client.  It reads one bounded request (GET only),
answers, and closes the connection; anything odd gets a 4xx, never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from http import HTTPStatus

from prometheus_client import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 8 * 1024  # request line + headers; probes send a few hundred bytes
READ_TIMEOUT = 5.0  # a slow or silent client must not hold a connection open


class HealthServer:
    """Serves the probes on ``host:port``; ``port=0`` picks a free port (see ``.port``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready: Callable[[], bool],
        metrics: Callable[[], bytes],
    ) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, limit=MAX_REQUEST_HEAD
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health server on http://%s:%d (/healthz /readyz /metrics)", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, content_type, body = await self._respond(reader)
            head = (
                f"HTTP/1.1 {status.value} {status.phrase}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("ascii") + body)
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass  # the client went away; nothing to answer
        except Exception:
            log.exception("health server: unexpected error")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[HTTPStatus, str, bytes]:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        except asyncio.LimitOverrunError:
            return _text(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request too large")
        except asyncio.IncompleteReadError:
            return _text(HTTPStatus.BAD_REQUEST, "incomplete request")
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or not parts[1].startswith(b"/"):
            return _text(HTTPStatus.BAD_REQUEST, "malformed request line")
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method != b"GET":
            return _text(HTTPStatus.METHOD_NOT_ALLOWED, "only GET is supported")
        if target == b"/healthz":
            return _text(HTTPStatus.OK, "ok")
        if target == b"/readyz":
            if self._ready():
                return _text(HTTPStatus.OK, "ready")
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, "not ready (registering or draining)")
        if target == b"/metrics":
            return HTTPStatus.OK, CONTENT_TYPE_LATEST, self._metrics()
        return _text(HTTPStatus.NOT_FOUND, "not found: try /healthz, /readyz or /metrics")


def _text(status: HTTPStatus, message: str) -> tuple[HTTPStatus, str, bytes]:
    return status, "text/plain; charset=utf-8", (message + "\n").encode()
