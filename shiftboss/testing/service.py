"""A stand-in for a Kubernetes Service in front of operator replicas, for tests.

``ReadyService`` listens on 127.0.0.1 and forwards each new TCP connection to a backend
that leads: its ``/readyz`` answers 200 without ``"standby": true``, polled every
``poll_seconds``.  This stands in for the chart's Service, which selects ready pods that
carry the leader's label (``shiftboss.ownpod``): standbys are ready too (they answer
``/readyz`` 200 with ``"standby": true``), so readiness alone would route to them.  Workers
given the Service's URL thus reach whichever replica leads.
While no backend leads it refuses connections, as a Service without endpoints does
(clients see "connection refused": the port stays reserved, but nothing listens on it).
Bytes are relayed as they are, so a TLS backend is TLS through the Service too.

It runs its own event loop in a thread, so synchronous tests can use it::

    with ReadyService([first.url, second.url]) as service:
        ...  # give workers service.url
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from shiftboss.testing.node.serviceproxy import splice


class ReadyService:
    def __init__(
        self, backends: Sequence[str], *, poll_seconds: float = 0.5, probe_timeout: float = 1.0
    ) -> None:
        if not backends:
            raise ValueError("ReadyService needs at least one backend URL")
        self.backends = [url.rstrip("/") for url in backends]
        self.poll_seconds, self.probe_timeout = poll_seconds, probe_timeout
        # Bound but never listening: it keeps the port ours while nothing listens on it
        # (SO_REUSEPORT lets the listening socket share it; it alone receives connections).
        self._reservation = socket.socket()
        self._reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self._reservation.bind(("127.0.0.1", 0))
        self.port: int = self._reservation.getsockname()[1]
        self.url = f"{urlsplit(self.backends[0]).scheme}://127.0.0.1:{self.port}"
        self._ready: list[str] = []
        self._round_robin = itertools.count()
        self._server: asyncio.Server | None = None
        self._forwarding: dict[asyncio.Task[None], tuple[asyncio.StreamWriter, ...]] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ready-service")
        self._poller: asyncio.Task[None] | None = None

    def start(self) -> ReadyService:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._begin(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()
        self._reservation.close()

    def ready_backends(self) -> list[str]:
        """The backends that answered ``/readyz`` 200, not as a standby, at the last poll."""
        if self._poller is not None and self._poller.done() and not self._poller.cancelled():
            raise RuntimeError("ReadyService stopped polling") from self._poller.exception()
        return list(self._ready)

    def __enter__(self) -> ReadyService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _begin(self) -> None:
        self._poller = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        async with httpx.AsyncClient(verify=False, timeout=self.probe_timeout) as http:

            async def ready(url: str) -> bool:
                try:  # like the kubelet's HTTPS probes, without verifying the certificate
                    answer = await http.get(f"{url}/readyz")
                except httpx.HTTPError:
                    return False
                return answer.status_code == 200 and not _says_standby(answer)

            while True:
                answers = await asyncio.gather(*(ready(url) for url in self.backends))
                await self._set_ready(
                    [url for url, ok in zip(self.backends, answers, strict=True) if ok]
                )
                await asyncio.sleep(self.poll_seconds)

    async def _set_ready(self, ready: list[str]) -> None:
        self._ready = ready
        if ready and self._server is None:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            listener.bind(("127.0.0.1", self.port))
            self._server = await asyncio.start_server(self._forward, sock=listener)
        elif not ready and self._server is not None:
            self._server.close()  # new connections are refused; open ones carry on
            self._server = None

    async def _forward(self, client_in: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        if not self._ready:
            client.transport.abort()
            return
        url = self._ready[next(self._round_robin) % len(self._ready)]
        target = urlsplit(url)
        try:
            backend_in, backend = await asyncio.open_connection(target.hostname, target.port)
        except OSError:  # it went away since the last poll: as good as not ready
            await self._set_ready([u for u in self._ready if u != url])
            client.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._forwarding[task] = (client, backend)
        try:
            await splice(client_in, client, backend_in, backend)
        finally:
            del self._forwarding[task]
            client.close()
            backend.close()

    async def _shutdown(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None
        for task, writers in list(self._forwarding.items()):
            for writer in writers:
                writer.transport.abort()
            task.cancel()
        await asyncio.gather(
            *self._forwarding, *([self._poller] if self._poller else []), return_exceptions=True
        )


def _says_standby(answer: httpx.Response) -> bool:
    try:
        body = answer.json()
    except ValueError:  # not JSON: a plain ready backend
        return False
    return isinstance(body, dict) and body.get("standby") is True
