"""OperatorClient: one request per call, typed errors that tell absence from other
trouble (over real sockets), token rotation, tolerant parsing."""

from __future__ import annotations

import time

import httpx
import pytest
from wr_fakes import free_port, make_client
from wr_http import HANG, RESET, FaultyServer, Reply, Request

from worker_runtime.client import OperatorClient
from worker_runtime.config import WorkerConfig
from worker_runtime.errors import (
    AttemptNotCurrent,
    OperatorAbsent,
    OperatorUnavailable,
    ProtocolError,
    Unauthorized,
)
from worker_runtime.protocol import (
    ClaimRequest,
    CompleteReport,
    FailReport,
    HeartbeatRequest,
    ReleaseReport,
)

BASE_URL = "http://operator.test"


def error(status: int, message: str, field: str | None = None) -> httpx.Response:
    detail = {"code": "x", "message": message, "field": field}
    return httpx.Response(status, json={"error": detail})


class Script:
    """Answers requests from a list, recording them (for the pure parsing logic)."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answers.pop(0)


def scripted(script: Script, base_url: str = BASE_URL) -> OperatorClient:
    return OperatorClient(base_url, lambda: "t", transport=httpx.MockTransport(script))


class Answers:
    """A real server answering from a list: a Reply, RESET or HANG."""

    def __init__(self, *answers: Reply | object) -> None:
        self.answers = list(answers)
        self.paths: list[str] = []
        self.server = FaultyServer(self)

    async def __call__(self, request: Request) -> Reply | object:
        self.paths.append(request.path)
        return self.answers.pop(0)

    async def __aenter__(self) -> Answers:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()


@pytest.mark.parametrize(
    ("answer", "kind", "retry_after", "message"),
    [
        (
            Reply(
                503, {"error": {"code": "standby", "message": "a standby"}}, {"Retry-After": "3"}
            ),
            OperatorAbsent,
            3.0,
            "HTTP 503: a standby",
        ),
        (Reply(500, {"oops": 1}), OperatorUnavailable, None, "HTTP 500"),
        (Reply(429, None, {"Retry-After": "2"}), OperatorUnavailable, 2.0, "HTTP 429"),
        (RESET, OperatorUnavailable, None, "ReadError"),
    ],
)
async def test_failures_are_typed_and_not_retried(answer, kind, retry_after, message) -> None:
    async with Answers(answer) as server, make_client(server.server.url) as client:
        with pytest.raises(OperatorUnavailable) as info:
            await client.complete("uid.1", CompleteReport(result=1))
    assert type(info.value) is kind
    assert info.value.retry_after == retry_after
    assert message in str(info.value)
    assert server.paths == ["/v1/attempts/uid.1/complete"]  # one try: callers own retries


async def test_refused_connections_mean_the_operator_is_absent() -> None:
    async with make_client(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(OperatorAbsent, match="connection refused"):
            await client.heartbeat("w1", HeartbeatRequest())


async def test_a_heartbeat_gives_up_after_its_timeout() -> None:
    async with Answers(HANG) as server, make_client(server.server.url) as client:
        started = time.monotonic()
        with pytest.raises(OperatorUnavailable, match="ReadTimeout") as info:
            await client.heartbeat("w1", HeartbeatRequest(), timeout=0.2)
        assert 0.2 <= time.monotonic() - started < 2
    assert type(info.value) is OperatorUnavailable  # a timeout is not absence
    assert server.paths == ["/v1/workers/w1/heartbeat"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [(409, AttemptNotCurrent), (401, Unauthorized), (403, Unauthorized), (422, ProtocolError)],
)
async def test_4xx_are_typed(status: int, kind: type[Exception]) -> None:
    script = Script(error(status, "nope", field="retryable"))
    async with scripted(script) as client:
        with pytest.raises(kind) as info:
            await client.fail("uid.1", FailReport(error_type="E"))
    assert type(info.value) is kind
    assert "nope (field retryable)" in str(info.value)
    assert info.value.status == status
    assert len(script.requests) == 1


async def test_outcomes_go_to_their_endpoints() -> None:
    script = Script(*[httpx.Response(200, json={"ok": True})] * 3)
    async with scripted(script) as client:
        await client.report("u.1", CompleteReport(result={"a": 1}))
        await client.report("u.2", FailReport(error_type="E"))
        await client.report("u.3", ReleaseReport(reason="shutting down"))
    assert [(r.url.path, r.read()) for r in script.requests] == [
        ("/v1/attempts/u.1/complete", b'{"result":{"a":1}}'),
        (
            "/v1/attempts/u.2/fail",
            b'{"error_type":"E","message":"","retryable":true,"retry_after_seconds":null}',
        ),
        ("/v1/attempts/u.3/release", b'{"reason":"shutting down"}'),
    ]


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
    async with scripted(script) as client:
        response = await client.claim("w 1", ClaimRequest(max_attempts=2, wait_seconds=0))
        assert response.assignments[0].job.uid == "uid"
        assert script.requests[0].url.raw_path == b"/v1/workers/w%201/claim"
        with pytest.raises(ProtocolError, match="invalid ClaimResponse"):
            await client.claim("w1", ClaimRequest())
        with pytest.raises(ProtocolError, match="invalid ClaimResponse"):
            await client.claim("w1", ClaimRequest())


async def test_commands_of_unknown_types_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    commands = [
        {"type": "drain"},
        {"type": "cancel", "attempt_id": "u.1", "reason": "r", "grace_seconds": 2},
        {"type": "rebalance", "attempt_id": "u.2"},
    ]
    script = Script(httpx.Response(200, json={"commands": commands}))
    async with scripted(script) as client:
        response = await client.heartbeat("w1", HeartbeatRequest(attempt_ids=["u.1"]))
    assert [(c.type, c.attempt_id, c.grace_seconds) for c in response.commands] == [
        ("cancel", "u.1", 2.0)
    ]
    assert "ignoring a command this runtime does not know: {'type': 'drain'}" in caplog.text


async def test_base_url_path_prefix_is_kept() -> None:
    script = Script(httpx.Response(200, json={"ok": True}))
    client = OperatorClient("http://gw.test/shiftboss", None, transport=httpx.MockTransport(script))
    async with client:
        await client.complete("uid.1", CompleteReport())
    assert script.requests[0].url == "http://gw.test/shiftboss/v1/attempts/uid.1/complete"
    assert "authorization" not in script.requests[0].headers
