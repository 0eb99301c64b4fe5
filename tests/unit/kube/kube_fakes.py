"""Helpers of the kubeconfig and credential tests: kubeconfig files, an exec credential
plugin whose behaviour the test steers through files, a fake clock, small servers."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

PLUGIN_SOURCE = """\
import datetime as dt, json, os, pathlib, sys
state = pathlib.Path(os.environ["PLUGIN_DIR"])
calls = int((state / "calls").read_text()) + 1 if (state / "calls").exists() else 1
(state / "calls").write_text(str(calls))
if (state / "fail").exists():
    print((state / "fail").read_text(), file=sys.stderr)
    sys.exit(3)
status = {"token": f"token-{calls}"}
if (state / "seconds").exists():
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=float((state / "seconds").read_text()))
    status["expirationTimestamp"] = expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
if (state / "status.json").exists():
    status = json.loads((state / "status.json").read_text())
spec = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
print(json.dumps({"apiVersion": spec["apiVersion"], "kind": "ExecCredential", "status": status}))
"""


class ExecPlugin:
    """A credential plugin printing ``token-<n>`` on its n-th run.

    Files in ``dir`` steer it: ``seconds`` (token lifetime), ``fail`` (its stderr, exit 3),
    ``status.json`` (the status to print instead)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.command = directory / "credential-plugin"
        self.command.write_text(f"#!{sys.executable}\n{PLUGIN_SOURCE}")
        self.command.chmod(0o755)

    def calls(self) -> int:
        path = self.dir / "calls"
        return int(path.read_text()) if path.exists() else 0

    def lifetime(self, seconds: float) -> None:
        (self.dir / "seconds").write_text(str(seconds))

    def fail(self, stderr: str) -> None:
        (self.dir / "fail").write_text(stderr)

    def print_status(self, status: dict[str, Any]) -> None:
        (self.dir / "status.json").write_text(json.dumps(status))

    def user(self, **extra: Any) -> dict[str, Any]:
        """A kubeconfig ``user`` that runs this plugin."""
        return {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": str(self.command),
                "args": ["--cluster", "test"],
                "env": [{"name": "PLUGIN_DIR", "value": str(self.dir)}],
                "interactiveMode": "Never",
            },
            **extra,
        }


def kubeconfig(
    path: Path,
    *,
    server: str = "http://127.0.0.1:6443",
    user: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    current: str | None = "test",
) -> Path:
    """A one-context kubeconfig (context, cluster and user all named ``test``)."""
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server, **(cluster or {})}}],
        "users": [{"name": "test", "user": user or {}}],
        "contexts": [
            {"name": "test", "context": {"cluster": "test", "user": "test", **(context or {})}}
        ],
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


async def eventually(
    check: Callable[[], bool] | Callable[[], Awaitable[bool]], timeout: float = 5.0
) -> None:
    """Wait until ``check()`` holds, polling every 10 ms for at most ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {timeout} s")


class RecordingProxy:
    """A forward HTTP proxy on loopback that answers every request itself with ``{}``
    and records the request lines it got (``GET http://host/path HTTP/1.1``)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            self.requests.append(line.decode().strip())
            while (await reader.readline()).strip():
                pass  # headers
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
            )
            await writer.drain()
        writer.close()


class TlsServer:
    """An HTTPS server on 127.0.0.1 (``async with TlsServer(cert, key) as url``).

    ``/version`` answers ``{"gitVersion": "v1"}``; with ``client_ca``, client certificates
    are required and ``/whoami`` answers the presented one's common name."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None = None) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        if client_ca is not None:
            self.context.load_verify_locations(client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_get("/version", _version)
        app.router.add_get("/whoami", _whoami)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.context)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"https://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def _version(_: web.Request) -> web.Response:
    return web.json_response({"gitVersion": "v1"})


async def _whoami(request: web.Request) -> web.Response:
    assert request.transport is not None
    peer = request.transport.get_extra_info("peercert") or {}
    names = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
    return web.json_response({"subject": names[0] if names else None})
