"""kube-proxy's job on the process node: Services reachable at their ClusterIP.

The proxy watches Services and pods (it also stands in for the endpointslice
controller, which cannot publish loopback pod IPs: see ``servicetable``) and, for every
TCP port of a Service whose ClusterIP lies in the cluster's loopback Service CIDR,
listens on ClusterIP:port while the Service has ready endpoints.  Each accepted connection goes to
the next ready endpoint in turn, bytes relayed as they are (TLS passes through).

Like kube-proxy:
- a Service without ready endpoints refuses connections (nothing listens);
- a connection stays with the endpoint it was sent to, even when that endpoint stops
  being ready or the Service goes away (kube-proxy does not cut established flows);
- an endpoint that cannot be reached resets the connection sent to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import logging
from dataclasses import dataclass, field

from shiftboss.kube.client import PODS, KubeClient, Resource
from shiftboss.kube.informer import Informer, KubeObject, ObjectCallback
from shiftboss.testing.node.dns import HostsFile
from shiftboss.testing.node.servicetable import Backend, Frontend, Routes, ServiceTable

log = logging.getLogger("shiftboss.node.services")

SERVICES = Resource("", "v1", "services")
CONNECT_TIMEOUT_SECONDS = 5.0
#: The most bytes read from one side before they are written to the other: each
#: connection buffers at most this much per direction (the writer is drained first).
CHUNK_BYTES = 64 * 1024
#: Routes are applied again this often without a change, so that a listener whose
#: address:port could not be bound is retried.
RESYNC_SECONDS = 5.0


@dataclass
class _Listener:
    server: asyncio.Server
    backends: list[Backend]
    turn: itertools.count[int] = field(default_factory=itertools.count)

    def next_backend(self) -> Backend:
        return self.backends[next(self.turn) % len(self.backends)]


class Forwarder:
    """Listeners on the frontends that have ready backends, and the connections they
    relay; ``apply()`` brings them in line with new routes, ``close()`` ends them all."""

    def __init__(self) -> None:
        self._listeners: dict[Frontend, _Listener] = {}
        self._connections: dict[asyncio.Task[None], list[asyncio.StreamWriter]] = {}

    @property
    def listening(self) -> set[Frontend]:
        return set(self._listeners)

    async def apply(self, routes: Routes) -> None:
        for frontend in [f for f in self._listeners if not routes.get(f)]:
            self._listeners.pop(frontend).server.close()  # open connections carry on
            log.info("service %s %s:%d: no ready endpoints, not listening", *_addr(frontend))
        for frontend, backends in routes.items():
            if not backends:
                continue
            listener = self._listeners.get(frontend)
            if listener is None:
                try:
                    server = await asyncio.start_server(
                        functools.partial(self._forward, frontend), frontend.ip, frontend.port
                    )
                except OSError as exc:
                    log.warning("service %s %s:%d: cannot listen (%s)", *_addr(frontend), exc)
                    continue
                listener = self._listeners[frontend] = _Listener(server, backends)
            elif listener.backends == backends:
                continue
            listener.backends = backends
            log.info("service %s %s:%d -> %s", *_addr(frontend), _describe(backends))

    async def _forward(
        self, frontend: Frontend, client_in: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = [client]
        try:
            listener = self._listeners.get(frontend)
            if listener is None:  # accepted just before the listener closed
                client.transport.abort()
                return
            host, port = listener.next_backend()
            try:
                backend_in, backend = await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_TIMEOUT_SECONDS
                )
            except (OSError, TimeoutError) as exc:
                log.info(
                    "service %s %s:%d: endpoint %s:%d failed: %s", *_addr(frontend), host, port, exc
                )
                client.transport.abort()
                return
            self._connections[task].append(backend)
            await splice(client_in, client, backend_in, backend)
        finally:
            for writer in self._connections.pop(task):
                writer.close()

    async def close(self) -> None:
        for listener in self._listeners.values():
            listener.server.close()
        self._listeners.clear()
        for task, writers in self._connections.items():
            for writer in writers:
                writer.transport.abort()
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)


class ServiceProxy:
    """Watches Services and pods and keeps a ``Forwarder`` in line with them, and the
    node's DNS ``hosts`` table with the Services (see ``dns``).
    Run with ``run()`` (as a task); cancelling it closes every listener and connection."""

    def __init__(
        self, client: KubeClient, cidr: ipaddress.IPv4Network, hosts: HostsFile | None = None
    ) -> None:
        self.table = ServiceTable(cidr)
        self.forwarder = Forwarder()
        self.hosts = hosts
        self._changed = asyncio.Event()
        self._informers = [
            Informer(
                client,
                SERVICES,
                None,
                on_object=self._then_apply(self.table.service_changed),
                on_deleted=self._then_apply(self.table.service_deleted),
            ),
            Informer(
                client,
                PODS,
                None,
                on_object=self._then_apply(self.table.pod_changed),
                on_deleted=self._then_apply(self.table.pod_deleted),
            ),
        ]

    def _then_apply(self, update: ObjectCallback) -> ObjectCallback:
        def callback(doc: KubeObject) -> None:
            update(doc)
            self._changed.set()

        return callback

    async def run(self) -> None:
        for informer in self._informers:
            informer.start()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), RESYNC_SECONDS)
                self._changed.clear()
                if self.hosts is not None:
                    self.hosts.update(self.table.services())
                await self.forwarder.apply(self.table.routes())
        finally:
            for informer in self._informers:
                await informer.stop()
            await self.forwarder.close()


async def splice(
    client_in: asyncio.StreamReader,
    client: asyncio.StreamWriter,
    backend_in: asyncio.StreamReader,
    backend: asyncio.StreamWriter,
) -> None:
    """Relay both ways until both sides have ended; a reset on one side resets the other."""
    try:
        async with asyncio.TaskGroup() as relays:
            relays.create_task(relay(client_in, backend))
            relays.create_task(relay(backend_in, client))
    except* OSError:
        client.transport.abort()
        backend.transport.abort()


async def relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then pass the half-close on (HTTP/1.0 clients rely on it)."""
    while data := await source.read(CHUNK_BYTES):
        sink.write(data)
        await sink.drain()
    if sink.can_write_eof() and not sink.is_closing():
        with contextlib.suppress(OSError):
            sink.write_eof()


def _addr(frontend: Frontend) -> tuple[str, str, int]:
    return frontend.service, frontend.ip, frontend.port


def _describe(backends: list[Backend]) -> str:
    return ", ".join(f"{host}:{port}" for host, port in backends)
