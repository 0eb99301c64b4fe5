"""The standby's server (``shiftboss.standby``) on a loopback port."""

from __future__ import annotations

import socket
import ssl

import httpx
import pytest

from shiftboss import metrics
from shiftboss.standby import StandbyError, StandbyServer
from shiftboss.testing.cluster import free_port
from shiftboss.testing.pki import write_self_signed
from worker_runtime.protocol import ErrorResponse


async def test_a_standby_is_alive_ready_as_a_standby_and_refuses_the_protocol_with_503():
    port = free_port()
    async with (
        StandbyServer("127.0.0.1", port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")  # ready to take over: the Deployment is Available
        assert ready.status_code == 200
        assert (ready.json()["ready"], ready.json()["standby"]) == (True, True)
        assert "standby" in ready.json()["message"]
        for method, path in [
            ("POST", "/v1/workers/register"),
            ("POST", "/v1/workers/w-1/heartbeat"),
            ("POST", "/v1/attempts/uid.1/complete"),
            ("GET", "/v1/anything/at/all"),
        ]:
            answer = await http.request(method, path, json={"any": "body"})
            assert answer.status_code == 503, (method, path)
            error = ErrorResponse.model_validate(answer.json()).error
            assert error.code == "not_leader"
            assert "standby" in error.message
        # Scraped like any replica, and says it is not the one serving (the App sets the
        # gauge when it serves; none runs in this process).
        metrics.LEADER.set(0)
        scraped = await http.get("/metrics")
        assert scraped.status_code == 200
        assert "\nshiftboss_leader 0.0\n" in scraped.text


async def test_stopping_frees_the_port_for_the_leader():
    port = free_port()
    standby = StandbyServer("127.0.0.1", port)
    await standby.start()
    with socket.socket() as taken, pytest.raises(OSError):
        taken.bind(("127.0.0.1", port))
    await standby.stop()
    await standby.stop()  # idempotent
    with socket.socket() as leader:
        leader.bind(("127.0.0.1", port))


async def test_a_busy_port_is_a_clear_error():
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(StandbyError, match=f"--host/--port: cannot serve on 127.0.0.1:{port}"):
            await StandbyServer("127.0.0.1", port).start()


async def test_the_standby_serves_tls_when_the_worker_api_does(tmp_path):
    cert, key = write_self_signed(tmp_path, "operator", ("127.0.0.1",))
    port = free_port()
    serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    serving.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cafile=str(cert))
    async with (
        StandbyServer("127.0.0.1", port, serving),
        httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=trust) as http,
    ):
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.post("/v1/workers/register")).status_code == 503
    async with StandbyServer("127.0.0.1", port, serving), httpx.AsyncClient() as plain:
        with pytest.raises(httpx.RemoteProtocolError):  # plain HTTP is not served
            await plain.get(f"http://127.0.0.1:{port}/healthz")
