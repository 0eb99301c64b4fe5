"""A fake operator behind ``httpx.MockTransport`` and helpers to run a worker against it.

A uniquely named module (not conftest) so test files can import it unambiguously.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx

from worker_runtime import Worker, WorkerConfig
from worker_runtime.client import OperatorClient
from worker_runtime.protocol import (
    Assignment,
    ClaimRequest,
    Command,
    ErrorDetail,
    ErrorResponse,
    HeartbeatRequest,
    JobRef,
    RegisterRequest,
)
from worker_runtime.runner import Runner

BASE_URL = "http://operator.test"


class FakeOperator:
    """Serves the worker protocol from memory; every wait in it is bounded."""

    def __init__(self) -> None:
        self.queue: list[Assignment] = []
        self.queued = asyncio.Event()
        self.registers: list[RegisterRequest] = []
        self.claims: list[ClaimRequest] = []
        self.claims_cancelled = 0
        self.heartbeats: list[HeartbeatRequest] = []
        self.progress: list[tuple[str, dict[str, Any]]] = []
        self.reports: dict[str, tuple[str, dict[str, Any]]] = {}
        self.report_calls: list[tuple[str, str]] = []
        self.commands: list[Command] = []
        #: (path suffix, status[, code]) answered instead of the normal response, in order
        self.faults: list[tuple[str, int] | tuple[str, int, str]] = []
        self.extra_assignments = 0  # misbehave: hand out more than max_attempts
        self.auth_headers: list[str] = []
        self.heartbeat_interval = 0.05
        #: called with each claim as it arrives (tests check slots with it)
        self.on_claim: Callable[[ClaimRequest], None] = lambda request: None
        self._next_uid = 0

    def enqueue(self, skill: str, params: dict[str, Any] | None = None) -> str:
        self._next_uid += 1
        uid = f"uid-{self._next_uid}"
        assignment = Assignment(
            attempt_id=f"{uid}.1",
            job=JobRef(namespace="ns", name=f"job-{self._next_uid}", uid=uid),
            attempt=1,
            skill=skill,
            params=params or {},
            lease_seconds=30,
        )
        self.queue.append(assignment)
        self.queued.set()
        return assignment.attempt_id

    def command(self, type_: str, attempt_id: str | None = None, reason: str = "") -> None:
        self.commands.append(Command(type=type_, attempt_id=attempt_id, reason=reason))

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.auth_headers.append(request.headers.get("authorization", ""))
        for i, (suffix, status, *code) in enumerate(self.faults):
            if path.endswith(suffix):
                del self.faults[i]
                if path.endswith(("/complete", "/fail")):
                    self.report_calls.append((path.split("/")[3], f"HTTP {status}"))
                code = code[0] if code else "attempt_not_current" if status == 409 else "fault"
                body = ErrorResponse(error=ErrorDetail(code=code, message=f"injected {status}"))
                return httpx.Response(status, json=body.model_dump())
        body = _json(request)
        if path == "/v1/workers/register":
            self.registers.append(RegisterRequest.model_validate(body))
            return httpx.Response(
                200,
                json={
                    "worker_id": body["worker_id"],
                    "heartbeat_interval_seconds": self.heartbeat_interval,
                    "lease_seconds": 5,
                },
            )
        if path.endswith("/claim"):
            return await self._claim(ClaimRequest.model_validate(body))
        if path.endswith("/heartbeat"):
            self.heartbeats.append(HeartbeatRequest.model_validate(body))
            commands, self.commands = self.commands, []
            return httpx.Response(200, json={"commands": [c.model_dump() for c in commands]})
        attempt_id, action = path.split("/")[3], path.split("/")[4]
        if action == "progress":
            self.progress.append((attempt_id, body))
        else:
            self.report_calls.append((attempt_id, action))
            self.reports[attempt_id] = (action, body)
        return httpx.Response(200, json={"ok": True})

    async def _claim(self, request: ClaimRequest) -> httpx.Response:
        self.claims.append(request)
        self.on_claim(request)
        try:
            deadline = time.monotonic() + min(request.wait_seconds, 2.0)
            while not self.queue and time.monotonic() < deadline:
                self.queued.clear()
                try:
                    await asyncio.wait_for(self.queued.wait(), deadline - time.monotonic())
                except TimeoutError:
                    break
        except asyncio.CancelledError:
            self.claims_cancelled += 1
            raise
        n = request.max_attempts + self.extra_assignments
        taken, self.queue = self.queue[:n], self.queue[n:]
        return httpx.Response(200, json={"assignments": [a.model_dump(mode="json") for a in taken]})


def _json(request: httpx.Request) -> dict[str, Any]:
    return json.loads(request.content) if request.content else {}


def make_config(**overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {
        "operator_url": BASE_URL,
        "pool": "pool",
        "worker_id": "w1",
        "health_port": 0,
        "claim_wait_seconds": 1,
        "drain_timeout_seconds": 2,
    }
    values.update(overrides)
    return WorkerConfig(**values)


def make_client(transport: httpx.AsyncBaseTransport, **kwargs: Any) -> OperatorClient:
    kwargs.setdefault("retries", 1)
    kwargs.setdefault("backoff_initial", 0.01)
    kwargs.setdefault("backoff_max", 0.02)
    return OperatorClient(BASE_URL, lambda: "test-token", transport=transport, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_until(condition: Callable[[], bool], timeout: float = 3.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.01)


class Harness:
    """A runner of ``worker`` against ``operator``, started as a task."""

    def __init__(self, worker: Worker, operator: FakeOperator, **options: Any) -> None:
        config_overrides = options.pop("config", {})
        self.operator = operator
        self.client = make_client(operator.transport())
        options.setdefault("cancel_grace_seconds", 0.2)
        options.setdefault("retry_initial_seconds", 0.01)
        options.setdefault("retry_max_seconds", 0.05)
        self.runner = Runner(worker, make_config(**config_overrides), self.client, **options)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Harness:
        self.task = asyncio.create_task(self.runner.run())
        await wait_until(lambda: self.runner.registered or self.task.done(), what="registration")
        return self

    async def report(self, attempt_id: str, timeout: float = 3.0) -> tuple[str, dict[str, Any]]:
        await wait_until(lambda: attempt_id in self.operator.reports, timeout, f"{attempt_id}")
        return self.operator.reports[attempt_id]

    async def stop(self, timeout: float = 5.0) -> None:
        assert self.task is not None
        self.runner.drain("test over")
        await asyncio.wait_for(self.task, timeout)
