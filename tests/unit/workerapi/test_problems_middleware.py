"""The worker API's error middleware: a caller that goes away mid-request is no error of
the operator's (no traceback in its log), an unexpected exception still is."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shiftboss.workerapi.problems import errors_middleware


async def serve(error: Exception) -> TestClient:
    async def handler(request: web.Request) -> web.Response:
        raise error

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_post("/v1/x", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.mark.parametrize(
    ("error", "status", "level"),
    [
        (ConnectionResetError("Connection lost"), 400, logging.INFO),
        (RuntimeError("a bug"), 500, logging.ERROR),
    ],
    ids=["caller-went-away", "bug"],
)
async def test_a_lost_caller_is_logged_quietly_and_a_bug_loudly(
    caplog: pytest.LogCaptureFixture, error: Exception, status: int, level: int
) -> None:
    client = await serve(error)
    try:
        with caplog.at_level(logging.INFO, logger="shiftboss.workerapi"):
            response = await client.post("/v1/x", json={})
        assert response.status == status
        records = [r for r in caplog.records if r.name == "shiftboss.workerapi"]
        assert [r.levelno for r in records] == [level]
        assert (records[0].exc_info is not None) == (level == logging.ERROR)
    finally:
        await client.close()
