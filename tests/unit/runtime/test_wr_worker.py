"""Worker.serve: health server wiring, readiness, drain, signals, misuse."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

import pytest
from wr_fakes import FakeOperator, free_port, make_client, make_config, wait_until

from worker_runtime import Context, Worker
from worker_runtime.errors import ConfigError


async def http_status(port: int, path: str) -> int:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    writer.write(f"GET {path} HTTP/1.1\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 2)
    writer.close()
    return int(data.split(b" ")[1])


def blocking_worker() -> tuple[Worker, asyncio.Event, asyncio.Event]:
    worker = Worker()
    started, release = asyncio.Event(), asyncio.Event()

    @worker.skill()
    async def block(params: dict, ctx: Context) -> str:
        started.set()
        await asyncio.wait_for(release.wait(), 5)
        return "done"

    return worker, started, release


async def test_serve_reports_readiness_and_drains(operator: FakeOperator) -> None:
    worker, started, release = blocking_worker()
    port = free_port()
    async with make_client(operator.url) as client:
        config = make_config(operator_url=operator.url, health_port=port)
        serving = asyncio.create_task(worker.serve(config, client=client, handle_signals=False))
        try:
            await wait_until(lambda: worker.runner is not None and worker.runner.ready)
            assert await http_status(port, "/readyz") == 200
            attempt = operator.enqueue("block")
            await asyncio.wait_for(started.wait(), 3)
            with pytest.raises(RuntimeError, match="already serving"):
                await worker.serve(config, client=client)
            worker.drain()
            assert await http_status(port, "/readyz") == 503
            assert await http_status(port, "/healthz") == 200
            release.set()
            await asyncio.wait_for(serving, 3)
        finally:
            serving.cancel()
    assert operator.reports[attempt] == ("complete", {"result": "done"})
    assert worker.runner is None
    with pytest.raises(OSError):  # the health server is gone
        await http_status(port, "/healthz")


async def test_sigterm_drains(operator: FakeOperator) -> None:
    worker, started, release = blocking_worker()
    async with make_client(operator.url) as client:
        serving = asyncio.create_task(
            worker.serve(make_config(operator_url=operator.url), client=client)
        )
        try:
            await wait_until(lambda: worker.runner is not None and worker.runner.ready)
            # Only send the signal if the worker handles it: otherwise it would kill pytest.
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            attempt = operator.enqueue("block")
            await asyncio.wait_for(started.wait(), 3)
            os.kill(os.getpid(), signal.SIGTERM)
            await wait_until(lambda: worker.runner.draining, what="drain on SIGTERM")
            release.set()
            await asyncio.wait_for(serving, 3)
        finally:
            serving.cancel()
    assert operator.reports[attempt][0] == "complete"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler removed


async def test_drain_from_another_thread(operator: FakeOperator) -> None:
    worker, _, _ = blocking_worker()
    async with make_client(operator.url) as client:
        serving = asyncio.create_task(
            worker.serve(make_config(operator_url=operator.url), client=client)
        )
        await wait_until(lambda: worker.runner is not None and worker.runner.ready)
        thread = threading.Thread(target=worker.drain)
        thread.start()
        thread.join(2)
        await asyncio.wait_for(serving, 3)


async def test_serve_refuses_what_cannot_work(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no skills"):
        await Worker().serve(make_config())
    worker, _, _ = blocking_worker()
    config = make_config(token_file=tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"SHIFTBOSS_TOKEN_FILE=.*no such file"):
        await worker.serve(config)
    assert worker.runner is None  # and it can be served again later
