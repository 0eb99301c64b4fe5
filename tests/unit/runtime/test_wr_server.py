"""The health server: probes, metrics, and junk that must not crash it."""

from __future__ import annotations

import asyncio

import pytest

from worker_runtime.metrics import WorkerMetrics
from worker_runtime.server import MAX_REQUEST_HEAD, HealthServer


async def exchange(port: int, raw: bytes, close_write: bool = False) -> tuple[int, bytes]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    try:
        writer.write(raw)
        await writer.drain()
        if close_write:
            writer.write_eof()
        data = await asyncio.wait_for(reader.read(), 2)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


@pytest.fixture
async def server():
    state = {"ready": False}
    metrics = WorkerMetrics()
    metrics.started.labels("resize").inc()
    srv = HealthServer("127.0.0.1", 0, ready=lambda: state["ready"], metrics=metrics.render)
    await srv.start()
    srv.state = state  # type: ignore[attr-defined]
    yield srv
    await srv.stop()


async def test_probes_and_metrics(server: HealthServer) -> None:
    assert await exchange(server.port, get("/healthz")) == (200, b"ok\n")
    assert (await exchange(server.port, get("/readyz")))[0] == 503
    server.state["ready"] = True  # type: ignore[attr-defined]
    assert await exchange(server.port, get("/readyz?verbose")) == (200, b"ready\n")
    status, body = await exchange(server.port, get("/metrics"))
    assert status == 200
    assert b'shiftboss_worker_attempts_started_total{skill="resize"} 1.0' in body
    assert b"shiftboss_worker_attempt_duration_seconds" in body
    assert (await exchange(server.port, get("/nope")))[0] == 404


@pytest.mark.parametrize(
    ("raw", "close_write", "status"),
    [
        (b"\x00\xff garbage\r\n\r\n", False, 400),
        (b"GET healthz HTTP/1.1\r\n\r\n", False, 400),
        (b"GET /healthz\r\n\r\n", False, 400),
        (b"GET /healthz HTTP/1.1\r\n", True, 400),  # the client stops mid-request
        (b"POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n", False, 405),
        (b"GET /" + b"a" * (MAX_REQUEST_HEAD + 10) + b" HTTP/1.1\r\n\r\n", False, 431),
    ],
)
async def test_junk_is_refused_and_the_server_survives(
    server: HealthServer, raw: bytes, close_write: bool, status: int
) -> None:
    assert (await exchange(server.port, raw, close_write))[0] == status
    assert await exchange(server.port, get("/healthz")) == (200, b"ok\n")
