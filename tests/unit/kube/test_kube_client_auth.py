"""After a 401 both clients (``KubeClient`` over httpx, Kopf's aiohttp session) renew the
credentials once and retry; when that cannot help, the 401 says why."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
from aiohttp import web
from kube_fakes import ExecPlugin, kubeconfig

from shiftboss.kube import credentials as credentials_module
from shiftboss.kube.client import ApiError, KubeClient
from shiftboss.kube.config import KubeConfig, KubeConfigError
from shiftboss.kube.kopf_login import login


@pytest.fixture(autouse=True)
def renew_at_once(monkeypatch):
    """Let a 401 renew credentials fetched a moment ago (the tests load them just before)."""
    monkeypatch.setattr(credentials_module, "REFETCH_INTERVAL", dt.timedelta())


@pytest.fixture
def plugin(tmp_path) -> ExecPlugin:
    return ExecPlugin(tmp_path / "plugin")


@pytest.fixture
def config(tmp_path, plugin) -> KubeConfig:
    return KubeConfig.from_file(kubeconfig(tmp_path / "config", user=plugin.user()))


class ApiServer:
    """Accepts only ``Bearer token-2``; records the Authorization of every request."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def answer(self, authorization: str | None) -> tuple[int, dict[str, object]]:
        self.seen.append(authorization)
        if authorization != "Bearer token-2":
            return 401, {"kind": "Status", "reason": "Unauthorized", "message": "Unauthorized"}
        return 200, {"kind": "Namespace", "metadata": {"name": "default"}}

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            status, body = self.answer(request.headers.get("Authorization"))
            return httpx.Response(status, json=body)

        return httpx.MockTransport(handle)


async def test_a_401_renews_the_credentials_and_retries(config, plugin):
    server = ApiServer()
    async with KubeClient(config, transport=server.transport()) as client:
        answer = await client.patch("/api/v1/namespaces/default", {"metadata": {}})
        assert answer["metadata"] == {"name": "default"}
        assert server.seen == ["Bearer token-1", "Bearer token-2"]
        assert client.writes == 1  # one write, although sent twice
        await client.get("/api/v1/namespaces/default")
    assert server.seen[-1] == "Bearer token-2"
    assert plugin.calls() == 2


async def test_a_watch_refused_with_401_is_retried_with_renewed_credentials(config):
    server = ApiServer()
    async with KubeClient(config, transport=server.transport()) as client:
        events = [event async for event in client.watch("/api/v1/namespaces")]
    assert events == [{"kind": "Namespace", "metadata": {"name": "default"}}]
    assert server.seen == ["Bearer token-1", "Bearer token-2"]


async def test_credentials_that_do_not_change_are_not_retried(tmp_path):
    config = KubeConfig.from_file(kubeconfig(tmp_path / "config", user={"token": "token-1"}))
    server = ApiServer()
    async with KubeClient(config, transport=server.transport()) as client:
        with pytest.raises(ApiError) as error:
            await client.get("/api/v1/namespaces/default")
    assert error.value.status == 401
    assert server.seen == ["Bearer token-1"]


async def test_a_401_after_a_failed_renewal_says_why(config, plugin):
    plugin.fail("error: the refresh token was revoked; run `login`")
    server = ApiServer()
    async with KubeClient(config, transport=server.transport()) as client:
        with pytest.raises(ApiError) as error:
            await client.get("/api/v1/namespaces/default")
    assert error.value.status == 401
    assert "exec plugin" in error.value.message
    assert "the refresh token was revoked; run `login`" in error.value.message
    assert server.seen == ["Bearer token-1"]


@pytest.fixture
async def aiohttp_server():
    """``ApiServer`` over real HTTP on loopback, for Kopf's aiohttp session."""
    server = ApiServer()
    headers: list[dict[str, list[str]]] = []

    async def handle(request: web.Request) -> web.Response:
        headers.append({name: request.headers.getall(name) for name in request.headers})
        status, body = server.answer(request.headers.get("Authorization"))
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/{path:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", server, headers
    await runner.cleanup()


async def test_kopf_session_renews_after_a_401_and_retries(tmp_path, plugin, aiohttp_server):
    url, server, headers = aiohttp_server
    user = plugin.user(**{"as": "operator", "as-groups": ["a", "b"]})
    config = KubeConfig.from_file(kubeconfig(tmp_path / "config", server=url, user=user))
    context = await login(config)
    assert (context.server, context.default_namespace) == (url, "default")
    async with (
        context.aiohttp_session as session,
        session.post(f"{url}/api/v1/namespaces", json={"metadata": {}}) as response,
    ):
        assert response.status == 200
    assert server.seen == ["Bearer token-1", "Bearer token-2"]
    assert headers[-1]["Impersonate-User"] == ["operator"]
    assert headers[-1]["Impersonate-Group"] == ["a", "b"]


async def test_kopf_login_after_an_incurable_401_fails_with_the_plugin_error(config, plugin):
    plugin.fail("error: no credentials for profile prod")
    assert await config.credentials.after_unauthorized(config.credentials.current) is None
    with pytest.raises(KubeConfigError, match="no credentials for profile prod"):
        await login(config)


async def test_a_request_whose_kopf_session_closed_while_it_waited_fails_as_kopf_expects(
    tmp_path, plugin, aiohttp_server, monkeypatch
):
    """Kopf logs in again by closing the session; a request then waiting for credentials must
    fail with the ``RuntimeError`` Kopf retries on, not aiohttp's bare ``AssertionError``."""
    url, server, _ = aiohttp_server
    config = KubeConfig.from_file(kubeconfig(tmp_path / "config", server=url, user=plugin.user()))
    context = await login(config)
    session = context.aiohttp_session
    waiting, close_now = asyncio.Event(), asyncio.Event()
    fetch = config.credentials.get

    async def slow_get():
        waiting.set()
        await close_now.wait()
        return await fetch()

    monkeypatch.setattr(config.credentials, "get", slow_get)
    request = asyncio.create_task(session.get(f"{url}/api/v1/namespaces/default"))
    await waiting.wait()
    await session.close()
    close_now.set()
    with pytest.raises(RuntimeError, match="Session is closed"):
        await request
    assert server.seen == []
