"""A small HTTP/1.1 server on 127.0.0.1 that can fail the ways networks fail.

The fake operator (``wr_fakes``) runs on it so that the runtime meets real sockets:
real long polls, real timeouts, connections refused while the server is away,
connections reset after a request was processed, TLS.  A handler answers each request
with a ``Reply``, or with one of:

* ``RESET``: reset the connection (the handler decides whether it processed the
  request first: a reply lost on the wire);
* ``HANG``: answer nothing until the client gives up and closes the connection.

A handler still running when its client closes the connection is cancelled, as in
servers that notice a client going away (the operator's long polls do).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

#: A hanging request is held at most this long (every wait in a test is bounded).
MAX_HANG_SECONDS = 30.0
MAX_BODY = 2 * 1024 * 1024


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else {}


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class _Action:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


RESET = _Action("RESET")
HANG = _Action("HANG")
Handler = Callable[[Request], Awaitable[Reply | _Action]]


class FaultyServer:
    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._tls = tls
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        #: Handlers cancelled because their client went away.
        self.cancelled_by_client: list[str] = []
        #: (path, seconds) of every request held by HANG until its client gave up.
        self.hangs: list[tuple[str, float]] = []

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self._tls, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and reset every open connection, as when a process dies:
        connections are refused until ``start()`` listens on the same port again."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._connections):
            _reset(writer)
        self._connections.clear()
        if self._tasks:  # the connections' handlers see the reset and end
            await asyncio.wait(list(self._tasks), timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._connections.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                answer = await self._handle(request, reader)
                if answer is None:  # the client went away
                    return
                if answer is RESET:
                    _reset(writer)
                    return
                if answer is HANG:
                    started = time.monotonic()
                    with contextlib.suppress(TimeoutError, ConnectionError):
                        await asyncio.wait_for(reader.read(), MAX_HANG_SECONDS)
                    self.hangs.append((request.path, time.monotonic() - started))
                    return
                assert isinstance(answer, Reply)
                writer.write(_encode(answer))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            return
        finally:
            self._connections.discard(writer)
            self._tasks.discard(task)
            writer.close()

    async def _handle(
        self, request: Request, reader: asyncio.StreamReader
    ) -> Reply | _Action | None:
        """Run the handler; cancel it if the client closes the connection meanwhile."""
        handling = asyncio.ensure_future(self._handler(request))
        closed = asyncio.ensure_future(reader.read(1))  # httpx never pipelines: b"" is EOF
        try:
            await asyncio.wait([handling, closed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, ssl.SSLError):
                await closed  # the reader is free for the next request only once it has ended
        if not handling.done():
            handling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await handling
            self.cancelled_by_client.append(request.path)
            return None
        return handling.result()


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if length > MAX_BODY:
        raise ValueError("request body too large")
    body = await reader.readexactly(length) if length else b""
    return Request(method, target.split("?", 1)[0], headers, body)


def _encode(reply: Reply) -> bytes:
    body = b"" if reply.body is None else json.dumps(reply.body).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    headers.update(reply.headers)
    phrase = HTTPStatus(reply.status).phrase
    head = f"HTTP/1.1 {reply.status} {phrase}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (head + "\r\n").encode("latin-1") + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (RST), not an orderly shutdown."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
