"""``KubeClient``'s discipline towards the API server: requests pass the priority gate
(watches do not), a 429 is resent after ``Retry-After`` without holding a slot, other
errors are not resent, and JSON goes both ways intact."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import orjson
import pytest
from kube_fakes import kubeconfig

from shiftboss.kube import client as client_module
from shiftboss.kube.client import RETRIES_ON_429, ApiError, KubeClient, retry_after
from shiftboss.kube.config import KubeConfig
from shiftboss.kube.flow import Priority

pytestmark = pytest.mark.timeout(10)

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]
OK = {"kind": "Status", "status": "Success"}


@pytest.fixture
def config(tmp_path) -> KubeConfig:
    return KubeConfig.from_file(kubeconfig(tmp_path / "config", user={"token": "t"}))


def client_for(config: KubeConfig, handler: Handler, max_in_flight: int = 4) -> KubeClient:
    return KubeClient(config, max_in_flight=max_in_flight, transport=httpx.MockTransport(handler))


class Blocking:
    """A server that holds every request until ``open`` is set, recording arrivals."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.arrived: list[str] = []
        self.active = self.peak = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.arrived.append(request.url.path)
        self.active += 1
        self.peak = max(self.peak, self.active)
        await self.open.wait()
        self.active -= 1
        return httpx.Response(200, json=OK)

    async def arrivals(self, count: int) -> None:
        for _ in range(200):
            if len(self.arrived) >= count:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{len(self.arrived)} requests arrived, expected {count}")


async def test_no_more_requests_in_flight_than_the_limit(config):
    server = Blocking()
    async with client_for(config, server, max_in_flight=3) as client:
        calls = [asyncio.create_task(client.get(f"/api/v1/x{i}")) for i in range(20)]
        await server.arrivals(3)
        assert (client.in_flight, client.waiting) == (3, 17)
        server.open.set()
        await asyncio.gather(*calls)
        assert server.peak == 3
        assert (client.in_flight, client.waiting) == (0, 0)


async def test_queued_requests_go_out_by_priority_then_arrival(config):
    server = Blocking()
    async with client_for(config, server, max_in_flight=1) as client:
        first = asyncio.create_task(client.get("/first"))
        await server.arrivals(1)
        calls = [
            asyncio.create_task(client.delete("/ttl", priority=Priority.BACKGROUND)),
            asyncio.create_task(client.get("/read")),
            asyncio.create_task(client.patch("/claim", {}, priority=Priority.CRITICAL)),
            asyncio.create_task(client.create("/events", {}, priority=Priority.BACKGROUND)),
            asyncio.create_task(client.replace("/outcome", {}, priority=Priority.CRITICAL)),
        ]
        while client.waiting < len(calls):
            await asyncio.sleep(0)
        server.open.set()
        await asyncio.gather(first, *calls)
    assert server.arrived == ["/first", "/claim", "/outcome", "/read", "/ttl", "/events"]


async def test_a_watch_is_not_held_back_by_a_full_gate(config):
    server = Blocking()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("watch") == "true":
            return httpx.Response(200, content=b'{"type": "ADDED"}\n')
        return await server(request)

    async with client_for(config, handler, max_in_flight=1) as client:
        held = asyncio.create_task(client.get("/held"))
        await server.arrivals(1)
        events = [event async for event in client.watch("/api/v1/pods")]
        assert events == [{"type": "ADDED"}]
        assert client.in_flight == 1
        server.open.set()
        await held


async def test_watch_lines_split_across_chunks_are_joined(config):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"type": "ADDED", "object": {"metadata": {"name": "caf'
        yield '\u00e9"}}}\n\n{"type": "BOOKMARK"}\n{"type": "DEL'.encode()
        yield b'ETED"}'  # the last line without its newline

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks())

    async with client_for(config, handler) as client:
        events = [event async for event in client.watch("/api/v1/pods")]
    assert events == [
        {"type": "ADDED", "object": {"metadata": {"name": "caf\u00e9"}}},
        {"type": "BOOKMARK"},
        {"type": "DELETED"},
    ]


class Refusing:
    """Answers 429 (with ``retry_after`` as its header, if any) ``refusals`` times, then 200."""

    def __init__(self, refusals: int, retry_after: str | None = None) -> None:
        self.refusals, self.retry_after = refusals, retry_after
        self.requests: list[bytes] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.content)
        if len(self.requests) <= self.refusals:
            headers = {"Retry-After": self.retry_after} if self.retry_after else {}
            status = {"kind": "Status", "reason": "TooManyRequests", "message": "slow down"}
            return httpx.Response(429, json=status, headers=headers)
        return httpx.Response(200, json=OK)


class Sleeps:
    """Each wait before a resend, and ``client``'s requests in flight during it."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.in_flight: list[int] = []
        self.client: KubeClient | None = None

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.in_flight.append(self.client.in_flight if self.client else -1)


@pytest.fixture
def sleeps(monkeypatch) -> Sleeps:
    """Records the client's waits instead of waiting."""
    recorder = Sleeps()
    monkeypatch.setattr(client_module.asyncio, "sleep", recorder)
    return recorder


async def test_a_429_is_resent_after_its_retry_after_without_holding_a_slot(config, sleeps):
    server = Refusing(2, retry_after="3")
    async with client_for(config, server) as client:
        sleeps.client = client
        answer = await client.patch("/apis/x/status", {"status": {"phase": "Running"}})
        assert answer == OK
        assert client.writes == 1  # one write, although sent three times
    assert len(server.requests) == 3
    assert sleeps.in_flight == [0, 0]
    assert all(3.0 <= seconds <= 3.6 for seconds in sleeps.waits), sleeps.waits


async def test_a_429_without_retry_after_waits_a_second(config, sleeps):
    server = Refusing(1)
    async with client_for(config, server) as client:
        assert await client.get("/api/v1/pods") == OK
    assert len(server.requests) == 2
    assert len(sleeps.waits) == 1
    assert 1.0 <= sleeps.waits[0] <= 1.2


async def test_a_429_forever_raises_after_the_bound(config, sleeps):
    server = Refusing(1000, retry_after="1")
    async with client_for(config, server) as client:
        with pytest.raises(ApiError) as error:
            await client.create("/api/v1/namespaces/default/events", {"reason": "x"})
    assert error.value.status == 429
    assert error.value.message == "slow down"
    assert len(server.requests) == RETRIES_ON_429 + 1
    assert len(sleeps.waits) == RETRIES_ON_429


@pytest.mark.parametrize("status", [500, 503, 504])
async def test_server_errors_are_not_resent(config, sleeps, status):
    requests: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(status, json={"reason": "InternalError", "message": "etcd"})

    async with client_for(config, handler) as client:
        with pytest.raises(ApiError) as error:
            await client.patch("/apis/x/status", {"status": {}})
        assert client.in_flight == 0
    assert error.value.status == status
    assert len(requests) == 1
    assert sleeps.waits == []


async def test_a_transport_error_releases_its_slot(config):
    async def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    async with client_for(config, handler, max_in_flight=1) as client:
        for _ in range(3):
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/api/v1/pods")
        assert client.in_flight == 0


@pytest.mark.parametrize(
    ("header", "low", "high"),
    [
        ("2", 2.0, 2.4),
        ("0", 0.0, 0.0),
        ("600", 10.0, 12.0),  # capped
        (None, 1.0, 1.2),
        ("Wed, 21 Oct 2026 07:28:00 GMT", 1.0, 1.2),  # an HTTP date counts as absent
        ("-5", 0.0, 0.0),
        ("nan", 1.0, 1.2),
    ],
)
def test_retry_after_is_capped_and_jittered(header, low, high):
    waits = [retry_after(header) for _ in range(200)]
    assert all(low <= wait <= high for wait in waits)


async def test_bodies_and_answers_round_trip_through_orjson(config):
    body = {
        "metadata": {"name": "caf\u00e9", "labels": {"emoji": "\U0001f680"}},
        "status": {"progress": 0.125, "attempt": 3, "result": None, "items": [True, "x"]},
    }
    seen: list[httpx.Request] = []

    async def echo(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=request.content)

    async with client_for(config, echo) as client:
        assert await client.patch("/apis/x/status", body) == body
    assert orjson.loads(seen[0].content) == body
    assert seen[0].headers["Content-Type"] == "application/merge-patch+json"
