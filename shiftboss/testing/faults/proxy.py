"""``FaultProxy``: an HTTP/1.1 reverse proxy on loopback whose faults are switched on and
off while it runs. It serves from an event loop in a background thread, so that a
synchronous test can drive it, and an async test can too (the proxy never runs on the
test's loop, so it cannot be blocked by it).

Each client connection gets its own upstream connection, opened at its first request:
a fault on one connection never disturbs another.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from shiftboss.testing.faults import http1
from shiftboss.testing.faults.rules import (
    Action,
    Delay,
    DropReply,
    Hang,
    Refuse,
    Respond,
    Rule,
    RuleBook,
    make_rule,
)

_START_TIMEOUT = 10.0
_CONNECT_TIMEOUT = 10.0


class _Upstream:
    """The one upstream connection of one client connection."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None) -> None:
        self._host, self._port, self._tls = host, port, tls
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, data: bytes) -> asyncio.StreamReader:
        """Send on the open connection, or a new one if there is none or the upstream
        closed it while idle; the reader to take the response from."""
        if self._conn is None or self._conn[0].at_eof():
            await self.close()
            self._conn = await asyncio.wait_for(
                asyncio.open_connection(
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host if self._tls else None,
                ),
                _CONNECT_TIMEOUT,
            )
        reader, writer = self._conn
        writer.write(data)
        await writer.drain()
        return reader

    async def close(self) -> None:
        if self._conn is not None:
            writer, self._conn = self._conn[1], None
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1)


class FaultProxy:
    """Forward ``http(s)://127.0.0.1:<port>`` to ``upstream``, applying the active rules.

    ``upstream_tls`` is the client context for an ``https`` upstream (with a client
    certificate if the upstream wants one); ``server_tls`` makes the proxy itself serve
    TLS. Rules fire in the order they were added (the first active match wins); each
    match is counted in ``rule.hits``.
    """

    def __init__(
        self,
        upstream: str,
        *,
        upstream_tls: ssl.SSLContext | None = None,
        server_tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream={upstream!r}: give an http:// or https:// URL")
        if parts.scheme == "https" and upstream_tls is None:
            upstream_tls = ssl.create_default_context()
        self.upstream = upstream
        self._upstream_addr = (parts.hostname, parts.port or (443 if upstream_tls else 80))
        self._upstream_tls = upstream_tls if parts.scheme == "https" else None
        self._server_tls = server_tls
        self.host, self.port = host, port
        self.rules = RuleBook(on_remove=self._released)
        #: Requests currently between the proxy's two sides (handy to wait for quiet).
        self.in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._hung: dict[Rule, asyncio.Event] = {}

    @property
    def url(self) -> str:
        return f"{'https' if self._server_tls else 'http'}://{self.host}:{self.port}"

    # -- lifecycle (from any thread but the proxy's own) --------------------------------

    def start(self) -> FaultProxy:
        if self._thread is not None:
            raise RuntimeError("this FaultProxy was already started; make a new one")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(self._loop,), name=f"fault-proxy->{self.upstream}", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(_START_TIMEOUT)
        return self

    def stop(self) -> None:
        """Close the listener and every connection, then end the proxy's thread."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(_START_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_START_TIMEOUT)

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:  # the proxy's thread
        try:
            loop.run_forever()
            # One more turn runs what the last one scheduled: closed connections let go
            # of their sockets only then.
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FaultProxy:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # -- rules ------------------------------------------------------------------------

    def drop_reply(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        times: int | None = None,
    ) -> Rule:
        """The upstream gets the request and answers; the client gets a closed connection."""
        return self._add(DropReply(), method, path, query, times)

    def delay(
        self,
        seconds: float,
        *,
        before: Literal["request", "reply"] = "request",
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        times: int | None = None,
    ) -> Rule:
        """Wait before forwarding the request, or (``before="reply"``) before passing the
        upstream's answer on. ``delay(0)`` only counts the matching requests."""
        return self._add(Delay(seconds, before), method, path, query, times)

    def hang(
        self,
        *,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        times: int | None = None,
    ) -> Rule:
        """Hold matching requests until the rule is removed (then they are forwarded) or
        their client gives up (then they never reach the upstream)."""
        return self._add(Hang(), method, path, query, times)

    def respond(
        self,
        status: int,
        body: bytes | str = b"",
        *,
        headers: Mapping[str, str] | None = None,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        times: int | None = None,
    ) -> Rule:
        """Answer ``status`` at once, without forwarding; e.g.
        ``respond(429, headers={"Retry-After": "1"})``."""
        data = body.encode() if isinstance(body, str) else body
        action = Respond(status, data, tuple((headers or {}).items()))
        return self._add(action, method, path, query, times)

    def refuse(self, *, times: int | None = None) -> Rule:
        """Reset new connections at once (before any TLS handshake), and open ones at
        their next request: the server is gone."""
        return self._add(Refuse(), None, None, None, times)

    def clear(self) -> None:
        """Remove every rule; held requests go on."""
        self.rules.clear()

    def _add(
        self,
        action: Action,
        method: str | None,
        path: str | None,
        query: str | None,
        times: int | None,
    ) -> Rule:
        rule = make_rule(self.rules, action, method=method, path=path, query=query, times=times)
        return self.rules.add(rule)

    def _released(self, rule: Rule) -> None:  # any thread: wake the requests it holds
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the proxy has stopped: nothing is held
                self._loop.call_soon_threadsafe(self._wake, rule)

    def _wake(self, rule: Rule) -> None:
        if (event := self._hung.pop(rule, None)) is not None:
            event.set()

    # -- the proxy's own loop ---------------------------------------------------------

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        # The loop is the proxy's own: every other task on it serves a connection.
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = _Upstream(*self._upstream_addr, self._upstream_tls)
        refused = self.rules.take_refusal() is not None
        try:
            if not refused:
                if self._server_tls is not None:
                    await writer.start_tls(self._server_tls)
                refused = await self._serve(reader, writer, upstream)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, http1.ProtocolError):
            pass  # a client or upstream that went away, or spoke nonsense: drop the connection
        finally:
            if refused:
                _reset(writer)
            else:
                writer.close()
            await upstream.close()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: _Upstream
    ) -> bool:
        """Requests on one client connection, one at a time, until either side closes;
        True if a ``Refuse`` rule ended the connection."""
        while (request := await http1.read_request(reader)) is not None:
            if self.rules.take_refusal() is not None:
                return True
            rule = self.rules.take(request.method, request.path, request.query)
            self.in_flight += 1
            try:
                keep_alive = await self._exchange(request, rule, reader, writer, upstream)
            finally:
                self.in_flight -= 1
            if not (keep_alive and request.keep_alive):
                break
        return False

    async def _exchange(
        self,
        request: http1.Request,
        rule: Rule | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: _Upstream,
    ) -> bool:
        """One request and its answer; True if the connection may carry another."""
        action = rule.action if rule is not None else None
        if isinstance(action, Respond):
            writer.write(http1.encode_response(action.status, action.body, action.headers))
            await writer.drain()
            return True
        if isinstance(action, Hang):
            assert rule is not None
            if not rule.removed:
                event = self._hung.setdefault(rule, asyncio.Event())
                await event.wait()
            if reader.at_eof() or reader.exception() is not None:
                return False  # the client gave up while the request was held
        if isinstance(action, Delay) and action.before == "request":
            await asyncio.sleep(action.seconds)
        host = f"{self._upstream_addr[0]}:{self._upstream_addr[1]}"
        source = await upstream.send(request.encode(host))
        head = await http1.read_response_head(source)
        while head is not None and 100 <= head.status < 200:  # interim answers pass through
            writer.write(head.raw)
            head = await http1.read_response_head(source)
        if head is None or isinstance(action, DropReply):
            return False  # the upstream has acted; the client hears nothing
        if isinstance(action, Delay) and action.before == "reply":
            await asyncio.sleep(action.seconds)
        writer.write(head.raw)
        await writer.drain()
        return await http1.relay_body(head, request.method, source, writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a host with nothing listening answers."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
