"""``shiftboss.testing.service.ReadyService``: a Service stand-in that routes to the leader."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from shiftboss.testing.processes import wait_until
from shiftboss.testing.service import ReadyService


class Backend:
    """A tiny HTTP server: ``/readyz`` answers 200 or 503 as told, as a standby or not
    (as the operator's replicas do), ``/who`` its name."""

    def __init__(self, name: str) -> None:
        self.name, self.ready, self.standby = name, False, False
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/readyz":
                    self.send_response(200 if backend.ready else 503)
                    # A standby says so in JSON; the others answer plain text.
                    standby = {"ready": backend.ready, "standby": True}
                    body = json.dumps(standby).encode() if backend.standby else b"ok"
                else:
                    self.send_response(200)
                    body = backend.name.encode()
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backends() -> Iterator[tuple[Backend, Backend]]:
    first, second = Backend("first"), Backend("second")
    yield first, second
    first.close()
    second.close()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def answers(service: ReadyService) -> str | None:
    try:
        return httpx.get(f"{service.url}/who", timeout=2).text
    except httpx.HTTPError:
        return None


def test_connections_go_to_the_ready_backend_and_are_refused_when_none_is(backends):
    first, second = backends
    with ReadyService([first.url, second.url], poll_seconds=0.1) as service:
        assert refused(service.port)

        first.ready = True
        wait_until(lambda: answers(service) == "first", timeout=5, what="routing to first")
        assert {answers(service) for _ in range(5)} == {"first"}

        first.ready, second.ready = False, True
        wait_until(lambda: answers(service) == "second", timeout=5, what="routing to second")
        assert {answers(service) for _ in range(5)} == {"second"}

        second.ready = False
        wait_until(lambda: refused(service.port), timeout=5, what="no ready backend")


def test_a_backend_that_dies_stops_receiving_connections(backends):
    first, _ = backends
    first.ready = True
    with ReadyService([first.url], poll_seconds=0.1) as service:
        wait_until(lambda: answers(service) == "first", timeout=5, what="routing to first")
        first.close()
        wait_until(lambda: refused(service.port), timeout=5, what="the dead backend dropped")
        assert service.ready_backends() == []


def test_a_ready_standby_gets_no_connections(backends):
    first, second = backends
    second.ready = second.standby = True  # a standby: ready to take over, not serving
    with ReadyService([first.url, second.url], poll_seconds=0.1) as service:
        time.sleep(0.5)
        assert refused(service.port)
        assert service.ready_backends() == []

        first.ready = True
        wait_until(lambda: answers(service) == "first", timeout=5, what="routing to first")
        assert {answers(service) for _ in range(5)} == {"first"}

        first.ready, second.standby = False, False  # a hand-over: second leads
        wait_until(lambda: answers(service) == "second", timeout=5, what="routing to second")
        assert service.ready_backends() == [second.url]
