"""FaultProxy against a small local aiohttp server: each rule, counts, streaming, TLS."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from shiftboss.testing.faults import FaultProxy
from shiftboss.testing.faults.rules import Refuse, make_rule
from shiftboss.testing.pki import write_pki

TIMEOUT = 5.0  # every wait in these tests is bounded by this


@dataclass
class Upstream:
    url: str = ""
    #: (method, path, query, body, Host header, monotonic time received) of every request
    seen: list[tuple[str, str, str, bytes, str, float]] = field(default_factory=list)
    #: Set by a test to let /stream send its second line.
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def received(self, path: str) -> list[bytes]:
        return [body for _, p, _, body, _, _ in self.seen if p == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            (
                request.method,
                request.path,
                request.query_string,
                body,
                request.host,
                time.monotonic(),
            )
        )
        if request.path == "/stream":
            return await self._stream(request)
        if request.path not in ("/echo", "/write"):
            raise web.HTTPNotFound()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "body": body.decode(),
                "x-test": request.headers.get("X-Test"),
            }
        )

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"one\n")
        await asyncio.wait_for(self.release.wait(), TIMEOUT)
        await response.write(b"two\n")
        await response.write_eof()
        return response


async def serve(upstream: Upstream, tls: ssl.SSLContext | None = None) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", upstream.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls)
    await site.start()
    host, port = runner.addresses[0][:2]
    upstream.url = f"{'https' if tls else 'http'}://{host}:{port}"
    return runner


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    runner = await serve(up)
    yield up
    await runner.cleanup()


@pytest.fixture
async def proxy(upstream: Upstream) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(upstream.url) as running:
        yield running


@pytest.fixture
async def client(proxy: FaultProxy) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=proxy.url, timeout=TIMEOUT) as http:
        yield http


async def hits(rule: Any, count: int = 1) -> None:
    await asyncio.to_thread(rule.wait_hits, count, TIMEOUT)


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


# -- plain forwarding --------------------------------------------------------------------


async def test_requests_pass_through_unchanged_on_one_kept_alive_connection(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    first = await client.post("/echo?x=1", content=b"payload", headers={"X-Test": "yes"})
    second = await client.get("/echo")

    assert first.status_code == 200
    assert first.json() == {
        "method": "POST",
        "path": "/echo",
        "query": "x=1",
        "body": "payload",
        "x-test": "yes",
    }
    assert second.json()["method"] == "GET"
    assert [host for *_, host, _ in upstream.seen] == [upstream.url.split("//")[1]] * 2
    assert (await client.get("/missing")).status_code == 404  # upstream errors pass too


def test_a_synchronous_test_drives_it_too(tmp_path: Path) -> None:
    class Hello(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with FaultProxy(f"http://127.0.0.1:{server.server_address[1]}") as proxy:
            assert httpx.get(f"{proxy.url}/x", timeout=TIMEOUT).text == "hello"
            with proxy.respond(503, path="^/x$") as rule:
                assert httpx.get(f"{proxy.url}/x", timeout=TIMEOUT).status_code == 503
            assert rule.hits == 1
            assert httpx.get(f"{proxy.url}/x", timeout=TIMEOUT).status_code == 200
        assert proxy._thread is not None and not proxy._thread.is_alive()
    finally:
        server.shutdown()
        server.server_close()


# -- respond, times, matching, switching --------------------------------------------------


async def test_respond_answers_at_once_without_forwarding(
    upstream: Upstream, proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    rule = proxy.respond(
        429, '{"reason": "TooManyRequests"}', headers={"Retry-After": "1"}, path="^/write$"
    )

    throttled = await client.post("/write", content=b"x")
    passed = await client.get("/echo")

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json() == {"reason": "TooManyRequests"}
    assert upstream.received("/write") == []
    assert passed.status_code == 200
    assert rule.hits == 1


async def test_times_limits_how_often_a_rule_fires(
    proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    rule = proxy.respond(503, times=2)

    statuses = [(await client.get("/echo")).status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert rule.hits == 2
    assert not rule.active


async def test_rules_match_method_path_and_query_and_the_first_added_wins(
    proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    watch = proxy.respond(418, method="get", path="^/echo$", query="watch=true")
    echo = proxy.respond(503, path="^/echo")

    assert (await client.get("/echo?watch=true")).status_code == 418
    assert (await client.get("/echo")).status_code == 503
    assert (await client.post("/echo?watch=true")).status_code == 503
    assert (await client.get("/write")).status_code == 200
    assert (watch.hits, echo.hits) == (1, 2)


async def test_rules_switch_on_and_off_while_requests_flow(
    proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/echo")).status_code == 200
    with proxy.respond(500) as rule:
        assert (await client.get("/echo")).status_code == 500
    assert rule.removed
    assert (await client.get("/echo")).status_code == 200
    proxy.respond(502)
    proxy.respond(504)
    assert (await client.get("/echo")).status_code == 502
    proxy.clear()
    assert (await client.get("/echo")).status_code == 200


# -- drop_reply, delay, hang, refuse ------------------------------------------------------


async def test_drop_reply_lands_the_write_and_loses_the_answer(
    upstream: Upstream, proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    rule = proxy.drop_reply(method="POST", path="^/write$", times=1)

    with pytest.raises(httpx.RemoteProtocolError):
        await client.post("/write", content=b"first")
    retried = await client.post("/write", content=b"second")

    assert upstream.received("/write") == [b"first", b"second"]  # the first one landed
    assert retried.status_code == 200
    assert rule.hits == 1


DELAY = 0.6


async def test_delay_before_the_request_holds_it_back_from_the_upstream(
    upstream: Upstream, proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    proxy.delay(DELAY, path="^/echo$")
    sent = time.monotonic()

    response = await client.get("/echo")

    answered = time.monotonic()
    assert response.status_code == 200
    assert upstream.seen[0][-1] - sent >= DELAY
    assert answered - sent < 2 * DELAY  # held once, not again before the reply


async def test_delay_before_the_reply_lets_the_upstream_act_first(
    upstream: Upstream, proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    proxy.delay(DELAY, before="reply", path="^/write$")
    sent = time.monotonic()
    answer = asyncio.create_task(client.post("/write", content=b"x"))

    await eventually(lambda: bool(upstream.received("/write")), "the upstream to get the write")
    acted_before_the_answer = not answer.done()
    response = await answer

    assert acted_before_the_answer
    assert response.status_code == 200
    assert time.monotonic() - sent >= DELAY


async def test_hang_holds_a_request_until_the_rule_is_removed(
    upstream: Upstream, proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    rule = proxy.hang(method="POST", path="^/write$")
    held = asyncio.create_task(client.post("/write", content=b"held"))

    await hits(rule)
    assert not held.done()
    assert upstream.received("/write") == []
    assert (await client.get("/echo")).status_code == 200  # other requests are not held
    rule.remove()
    response = await asyncio.wait_for(held, TIMEOUT)

    assert response.status_code == 200
    assert upstream.received("/write") == [b"held"]


async def test_a_hung_request_whose_client_gave_up_never_reaches_the_upstream(
    upstream: Upstream, proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    rule = proxy.hang(path="^/write$")

    with pytest.raises(httpx.ReadTimeout):
        await client.post("/write", content=b"abandoned", timeout=0.3)
    rule.remove()
    await eventually(lambda: proxy.in_flight == 0, "the proxy to let go of the request")

    assert rule.hits == 1
    assert upstream.received("/write") == []


async def test_refuse_resets_open_connections_and_new_ones(
    proxy: FaultProxy, client: httpx.AsyncClient
) -> None:
    assert (await client.get("/echo")).status_code == 200  # a kept-alive connection is open
    rule = proxy.refuse(times=2)

    with pytest.raises(httpx.TransportError):
        await client.get("/echo")  # the open connection, at its next request
    with pytest.raises(httpx.TransportError):
        await client.get("/echo")  # a new connection, at once

    assert rule.hits == 2
    assert (await client.get("/echo")).status_code == 200


# -- streaming ------------------------------------------------------------------------------


async def test_a_chunked_stream_passes_through_piece_by_piece(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    async with client.stream("GET", "/stream") as response:
        lines = response.aiter_lines()
        # The upstream sends "two" only after the test has seen "one" through the proxy.
        first = await asyncio.wait_for(anext(lines), TIMEOUT)
        upstream.release.set()
        second = await asyncio.wait_for(anext(lines), TIMEOUT)

    assert (first, second) == ("one", "two")
    assert response.headers["Transfer-Encoding"] == "chunked"


async def test_a_body_delimited_by_the_connection_closing_passes_through() -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with (
            FaultProxy(f"http://127.0.0.1:{port}") as proxy,
            httpx.AsyncClient(timeout=TIMEOUT) as http,
        ):
            response = await http.get(f"{proxy.url}/")
    finally:
        server.close()

    assert response.text == "until the end"


# -- TLS ------------------------------------------------------------------------------------


@pytest.fixture
def pki(tmp_path: Path) -> Callable[[str], str]:
    written = write_pki(tmp_path / "pki")
    return lambda name: str(written.file(name))


def server_context(pki: Callable[[str], str], *, require_client_cert: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki("apiserver.crt"), pki("apiserver.key"))
    if require_client_cert:
        ctx.load_verify_locations(pki("ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


@pytest.fixture
async def tls_upstream(pki: Callable[[str], str]) -> AsyncIterator[Upstream]:
    up = Upstream()
    runner = await serve(up, server_context(pki, require_client_cert=True))
    yield up
    await runner.cleanup()


def tls_proxy(pki: Callable[[str], str], upstream: Upstream, *, client_cert: bool) -> FaultProxy:
    upstream_tls = ssl.create_default_context(cafile=pki("ca.crt"))
    if client_cert:
        upstream_tls.load_cert_chain(pki("admin.crt"), pki("admin.key"))
    return FaultProxy(
        upstream.url,
        upstream_tls=upstream_tls,
        server_tls=server_context(pki, require_client_cert=False),
    )


async def test_tls_on_both_sides_forwards_with_the_client_certificate(
    pki: Callable[[str], str], tls_upstream: Upstream
) -> None:
    client_tls = ssl.create_default_context(cafile=pki("ca.crt"))
    async with (
        tls_proxy(pki, tls_upstream, client_cert=True) as proxy,
        httpx.AsyncClient(verify=client_tls, timeout=TIMEOUT) as http,
    ):
        assert proxy.url.startswith("https://")
        response = await http.post(f"{proxy.url}/echo", content=b"secret")
        rule = proxy.refuse(times=1)
        async with httpx.AsyncClient(verify=client_tls, timeout=TIMEOUT) as fresh:
            with pytest.raises(httpx.ConnectError):  # reset before the TLS handshake
                await fresh.get(f"{proxy.url}/echo")

    assert response.json()["body"] == "secret"
    assert rule.hits == 1


async def test_without_the_client_certificate_the_upstream_refuses(
    pki: Callable[[str], str], tls_upstream: Upstream
) -> None:
    client_tls = ssl.create_default_context(cafile=pki("ca.crt"))
    async with (
        tls_proxy(pki, tls_upstream, client_cert=False) as proxy,
        httpx.AsyncClient(verify=client_tls, timeout=TIMEOUT) as http,
    ):
        with pytest.raises(httpx.TransportError):
            await http.get(f"{proxy.url}/echo")

    assert tls_upstream.seen == []


# -- the API of rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.respond(200, times=0), "times=0"),
        (lambda p: p.respond(99), "status=99"),
        (lambda p: p.delay(-1), "seconds=-1"),
        (lambda p: p.hang(path="("), "path='\\('"),
        (lambda p: p.drop_reply(query="["), "query='\\['"),
    ],
)
def test_bad_rule_arguments_name_the_argument(
    make: Callable[[FaultProxy], Any], message: str
) -> None:
    proxy = FaultProxy("http://127.0.0.1:1")

    with pytest.raises(ValueError, match=message):
        make(proxy)

    assert proxy.rules.take("GET", "/", "") is None  # nothing was added


def test_refuse_takes_no_request_filters() -> None:
    proxy = FaultProxy("http://127.0.0.1:1")

    with pytest.raises(ValueError, match="drop method=, path= and query="):
        make_rule(proxy.rules, Refuse(), method="GET", path=None, query=None, times=None)


def test_an_upstream_that_is_not_a_url_is_refused() -> None:
    with pytest.raises(ValueError, match="upstream='localhost:80'"):
        FaultProxy("localhost:80")


def test_waiting_for_hits_that_never_come_times_out_naming_the_rule() -> None:
    proxy = FaultProxy("http://127.0.0.1:1")
    rule = proxy.drop_reply(method="POST", path="/claim$")

    with pytest.raises(TimeoutError, match=r"DropReply\(POST /claim\$\) fired 0 times"):
        rule.wait_hits(1, timeout=0.05)
