"""OperatorClient: retries, typed errors, token rotation, tolerant parsing."""

from __future__ import annotations

import httpx
import pytest
from wr_fakes import BASE_URL, make_client

from worker_runtime.client import OperatorClient
from worker_runtime.config import WorkerConfig
from worker_runtime.errors import (
    AttemptNotCurrent,
    OperatorUnavailable,
    ProtocolError,
    Unauthorized,
)
from worker_runtime.protocol import ClaimRequest, CompleteReport, FailReport, HeartbeatRequest


def error(status: int, message: str, field: str | None = None) -> httpx.Response:
    detail = {"code": "x", "message": message, "field": field}
    return httpx.Response(status, json={"error": detail})


class Script:
    """Answers requests from a list, recording them."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


async def test_5xx_and_transport_errors_are_retried() -> None:
    script = Script(
        httpx.Response(503, text="restarting"),
        httpx.ConnectError("refused"),
        httpx.Response(200, json={"ok": True}),
    )
    async with make_client(httpx.MockTransport(script), retries=3) as client:
        ack = await client.complete("uid.1", CompleteReport(result={"a": 1}))
    assert ack.ok
    assert len(script.requests) == 3
    assert script.requests[0].url == f"{BASE_URL}/v1/attempts/uid.1/complete"
    assert script.requests[0].read() == b'{"result":{"a":1}}'


async def test_retries_are_bounded() -> None:
    script = Script(*[httpx.Response(500)] * 3)
    async with make_client(httpx.MockTransport(script), retries=2) as client:
        with pytest.raises(OperatorUnavailable, match="failed 3 times: HTTP 500"):
            await client.heartbeat("w1", HeartbeatRequest())
    assert len(script.requests) == 3


@pytest.mark.parametrize(
    ("status", "kind"),
    [(409, AttemptNotCurrent), (401, Unauthorized), (403, Unauthorized), (422, ProtocolError)],
)
async def test_4xx_are_typed_and_not_retried(status: int, kind: type[Exception]) -> None:
    script = Script(error(status, "nope", field="retryable"))
    async with make_client(httpx.MockTransport(script), retries=3) as client:
        with pytest.raises(kind) as info:
            await client.fail("uid.1", FailReport(error_type="E"))
    assert type(info.value) is kind
    assert "nope (field retryable)" in str(info.value)
    assert info.value.status == status
    assert len(script.requests) == 1


async def test_token_is_read_for_every_request(tmp_path) -> None:
    token_file = tmp_path / "token"
    config = WorkerConfig(operator_url=BASE_URL, pool="p", token_file=token_file)
    script = Script(*[httpx.Response(200, json={"commands": []})] * 2)
    client = OperatorClient(BASE_URL, config.read_token, transport=httpx.MockTransport(script))
    async with client:
        token_file.write_text("first\n")
        await client.heartbeat("w1", HeartbeatRequest())
        token_file.write_text("rotated")
        await client.heartbeat("w1", HeartbeatRequest())
    assert [r.headers["authorization"] for r in script.requests] == [
        "Bearer first",
        "Bearer rotated",
    ]


async def test_unknown_answer_fields_are_ignored_but_broken_answers_are_errors() -> None:
    assignment = {
        "attempt_id": "uid.1",
        "job": {"namespace": "ns", "name": "j", "uid": "uid", "future": 1},
        "attempt": 1,
        "skill": "s",
        "params": {},
        "lease_seconds": 30,
        "priority": 5,
    }
    script = Script(
        httpx.Response(200, json={"assignments": [assignment], "next": "x"}),
        httpx.Response(200, json={"assignments": [{"attempt_id": 3}]}),
        httpx.Response(200, text="<html>"),
    )
    async with make_client(httpx.MockTransport(script)) as client:
        response = await client.claim("w 1", ClaimRequest(max_attempts=2, wait_seconds=0))
        assert response.assignments[0].job.uid == "uid"
        assert script.requests[0].url.raw_path == b"/v1/workers/w%201/claim"
        with pytest.raises(ProtocolError, match="invalid ClaimResponse"):
            await client.claim("w1", ClaimRequest())
        with pytest.raises(ProtocolError, match="invalid ClaimResponse"):
            await client.claim("w1", ClaimRequest())


async def test_base_url_path_prefix_is_kept() -> None:
    script = Script(httpx.Response(200, json={"ok": True}))
    client = OperatorClient("http://gw.test/shiftboss", None, transport=httpx.MockTransport(script))
    async with client:
        await client.complete("uid.1", CompleteReport())
    assert script.requests[0].url == "http://gw.test/shiftboss/v1/attempts/uid.1/complete"
    assert "authorization" not in script.requests[0].headers
