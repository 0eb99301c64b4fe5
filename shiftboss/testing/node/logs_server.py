"""The node's kubelet port, enough for ``kubectl logs`` (the API server proxies to it)."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from aiohttp import web

from shiftboss.testing.pki import write_self_signed

if TYPE_CHECKING:
    from shiftboss.testing.node.agent import ProcessNode

FOLLOW_POLL_SECONDS = 0.5


class LogsServer:
    def __init__(self, node: ProcessNode) -> None:
        self.node = node
        self._runner: web.AppRunner | None = None

    async def start(self, host: str) -> int:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        cert, key = write_self_signed(self.node.workdir / "tls", "kubelet", (host, "localhost"))
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        site = web.TCPSite(self._runner, host, 0, ssl_context=ctx)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        runner = next(
            (r for r in self.node.runners.values() if r.namespace == ns and r.name == pod), None
        )
        if runner is None or container not in {c.name for c in runner.containers}:
            raise web.HTTPNotFound(
                text=f"container {container!r} of pod {ns}/{pod} not on this node"
            )
        path = runner.log_path(container)
        data = path.read_bytes() if path.exists() else b""
        tail = request.query.get("tailLines")
        if tail and tail.isdigit():
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(tail) :]) if int(tail) else b""
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(data)
        if request.query.get("follow") in ("true", "1"):
            offset = path.stat().st_size if path.exists() else 0
            while runner.task and not runner.task.done():
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
                if path.exists() and path.stat().st_size > offset:
                    with open(path, "rb") as f:
                        f.seek(offset)
                        chunk = f.read()
                    offset += len(chunk)
                    await response.write(chunk)
        await response.write_eof()
        return response
