"""The process node's Service forwarder on real loopback sockets (no API server)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from shiftboss.testing.cluster import free_port
from shiftboss.testing.node.serviceproxy import Forwarder
from shiftboss.testing.node.servicetable import Backend, Frontend

HOST = "127.0.0.1"


async def start_backend(name: str) -> tuple[asyncio.Server, Backend]:
    """Says its name, then echoes until the client half-closes, then closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"{name}\n".encode())
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, HOST, 0)
    return server, (HOST, server.sockets[0].getsockname()[1])


@pytest.fixture
async def forwarder() -> AsyncIterator[Forwarder]:
    forwarder = Forwarder()
    yield forwarder
    await forwarder.close()


@pytest.fixture
async def backends() -> AsyncIterator[dict[str, Backend]]:
    servers = {name: await start_backend(name) for name in ("a", "b")}
    yield {name: backend for name, (_, backend) in servers.items()}
    for server, _ in servers.values():
        server.close()


@pytest.fixture
def frontend() -> Frontend:
    return Frontend(HOST, free_port())


async def connect(frontend: Frontend) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(frontend.ip, frontend.port)
    name = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
    return name, reader, writer


async def test_connections_rotate_among_ready_backends(forwarder, backends, frontend):
    await forwarder.apply({frontend: [backends["a"], backends["b"]]})
    names = []
    for _ in range(4):
        name, _, writer = await connect(frontend)
        names.append(name)
        writer.close()
    assert names == ["a", "b", "a", "b"]


async def test_bytes_pass_both_ways_and_a_half_close_reaches_the_backend(
    forwarder, backends, frontend
):
    await forwarder.apply({frontend: [backends["a"]]})
    _, reader, writer = await connect(frontend)
    payload = bytes(range(256)) * 1024  # more than one relay chunk
    writer.write(payload)
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == payload  # echoed, then closed
    writer.close()


async def test_no_ready_backend_refuses_while_open_connections_carry_on(
    forwarder, backends, frontend
):
    await forwarder.apply({frontend: []})
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(frontend.ip, frontend.port)
    await forwarder.apply({frontend: [backends["a"]]})
    _, reader, writer = await connect(frontend)
    await forwarder.apply({frontend: []})  # the endpoint stopped being ready
    assert forwarder.listening == set()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(frontend.ip, frontend.port)
    writer.write(b"still here")
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == b"still here"
    writer.close()


async def test_new_connections_follow_changed_backends_and_removed_services(
    forwarder, backends, frontend
):
    await forwarder.apply({frontend: [backends["a"]]})
    assert (await connect(frontend))[0] == "a"
    await forwarder.apply({frontend: [backends["b"]]})
    assert (await connect(frontend))[0] == "b"
    await forwarder.apply({})  # the Service was deleted
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(frontend.ip, frontend.port)


async def test_an_unreachable_backend_resets_the_connection(forwarder, frontend):
    await forwarder.apply({frontend: [(HOST, free_port())]})  # nothing listens there
    reader, writer = await asyncio.open_connection(frontend.ip, frontend.port)
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_close_ends_listeners_and_open_connections(forwarder, backends, frontend):
    await forwarder.apply({frontend: [backends["a"]]})
    _, reader, writer = await connect(frontend)
    await forwarder.close()
    with contextlib.suppress(ConnectionResetError):
        assert await asyncio.wait_for(reader.read(), 5) == b""
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(frontend.ip, frontend.port)
    writer.close()
