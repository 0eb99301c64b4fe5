"""The worker loop against the fake operator: outcomes, concurrency, registration."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic import BaseModel
from wr_fakes import FakeOperator, Harness, wait_until

from worker_runtime import Context, FatalError, RetryableError, Worker
from worker_runtime.errors import Unauthorized


class Resize(BaseModel):
    url: str
    width: int


def make_worker() -> Worker:
    worker = Worker(version="test-1")

    @worker.skill()
    async def resize(params: Resize, ctx: Context) -> dict:
        await ctx.progress(50, "halfway")
        return {"url": params.url, "width": params.width}

    @worker.skill()
    async def fatal(params: dict) -> None:
        raise FatalError("bad image")

    @worker.skill()
    async def retry_later(params: dict) -> None:
        raise RetryableError("busy", after=7)

    @worker.skill()
    def crash(params: dict) -> None:
        raise ValueError("boom")

    return worker


async def test_success_registers_heartbeats_and_completes(operator: FakeOperator, harness_factory):
    harness: Harness = await harness_factory(make_worker(), config={"concurrency": 3})
    [register] = operator.registers
    assert register.pool == "pool" and register.worker_id == "w1"
    assert register.capacity == 3 and register.version == "test-1" and register.runtime == "python"
    assert {s.name for s in register.skills} == {"resize", "fatal", "retry_later", "crash"}

    attempt = operator.enqueue("resize", {"url": "u", "width": 10})
    assert await harness.report(attempt) == ("complete", {"result": {"url": "u", "width": 10}})
    assert operator.progress == [(attempt, {"percent": 50.0, "message": "halfway"})]
    assert operator.claims[0].max_attempts == 3
    assert set(operator.auth_headers) == {"Bearer test-token"}
    await wait_until(lambda: len(operator.heartbeats) >= 2, what="heartbeats")
    assert operator.job_of(attempt).history == [(attempt, "complete")]
    metrics = harness.runner.metrics.render().decode()
    assert 'shiftboss_worker_attempts_succeeded_total{skill="resize"} 1.0' in metrics


@pytest.mark.parametrize(
    ("skill", "params", "expected"),
    [
        (
            "resize",
            {"url": "u", "width": "wide"},
            {"error_type": "InvalidParams", "retryable": False, "retry_after_seconds": None},
        ),
        (
            "fatal",
            {},
            {"error_type": "FatalError", "message": "bad image", "retryable": False},
        ),
        (
            "retry_later",
            {},
            {"error_type": "RetryableError", "retryable": True, "retry_after_seconds": 7.0},
        ),
        (
            "crash",
            {},
            {"error_type": "ValueError", "message": "boom", "retryable": True},
        ),
        ("nope", {}, {"error_type": "UnknownSkill", "retryable": False}),
    ],
)
async def test_failures_are_mapped(operator, harness_factory, skill, params, expected):
    harness = await harness_factory(make_worker())
    attempt = operator.enqueue(skill, params)
    action, body = await harness.report(attempt)
    assert action == "fail"
    assert body.items() >= expected.items()
    if skill == "resize":
        assert "width: Input should be a valid integer" in body["message"]
    if skill == "nope":
        assert "(it has: crash, fatal, resize, retry_later)" in body["message"]
    assert operator.progress == []


async def test_concurrency_is_never_exceeded(operator, harness_factory):
    worker = Worker()
    running = 0
    peak = 0

    @worker.skill()
    async def slow(params: dict) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02 * (1 + params["i"] % 3))  # uneven: slots free one by one
        running -= 1
        return params["i"]

    overasked = []
    operator.on_claim = lambda claim: overasked.append(claim.max_attempts + running > 2)
    harness = await harness_factory(worker, config={"concurrency": 2})
    attempts = [operator.enqueue("slow", {"i": i}) for i in range(6)]
    for i, attempt in enumerate(attempts):
        assert await harness.report(attempt) == ("complete", {"result": i})
    assert peak == 2
    assert any(c.max_attempts == 1 for c in operator.claims)  # asked for the one free slot
    assert not any(overasked)


async def test_5xx_and_429_on_a_report_are_retried(operator, harness_factory):
    harness = await harness_factory(make_worker())
    operator.fault("/complete", 500)
    operator.fault("/complete", 429)
    operator.fault("/complete", 502)
    attempt = operator.enqueue("resize", {"url": "a", "width": 1})
    assert (await harness.report(attempt))[0] == "complete"
    calls = [c for c in operator.report_calls if c[0] == attempt]
    assert calls == [
        (attempt, "HTTP 500"),
        (attempt, "HTTP 429"),
        (attempt, "HTTP 502"),
        (attempt, "complete"),
    ]


async def test_register_retries_until_the_operator_answers(operator, harness_factory):
    operator.fault("/register", 503, times=2)
    operator.fault("/register", 500)
    harness = await harness_factory(make_worker())
    assert harness.runner.registered
    assert len(operator.registers) == 1


async def test_unauthorized_register_is_fatal(operator, harness_factory):
    operator.fault("/register", 401)
    harness = await harness_factory(make_worker())
    with pytest.raises(Unauthorized, match="injected 401"):
        await asyncio.wait_for(harness.task, 3)


async def test_a_forgotten_worker_registers_again(operator, harness_factory):
    harness = await harness_factory(make_worker())
    operator.registered.clear()  # the operator restarted and forgot the worker
    await wait_until(lambda: len(operator.registers) == 2, what="a second registration")
    attempt = operator.enqueue("resize", {"url": "u", "width": 1})
    assert (await harness.report(attempt))[0] == "complete"


async def test_sync_skill_progress_and_bare_decorator(operator, harness_factory):
    worker = Worker()

    @worker.skill
    def sync_progress(params: dict, ctx: Context) -> str:
        ctx.progress_sync(30, "a third")
        return threading.current_thread().name

    harness = await harness_factory(worker)
    attempt = operator.enqueue("sync_progress")
    assert await harness.report(attempt) == ("complete", {"result": "skill-sync_progress"})
    assert operator.progress == [(attempt, {"percent": 30.0, "message": "a third"})]


async def test_409_on_progress_abandons_the_attempt(operator, harness_factory):
    worker = Worker()
    cancelled = asyncio.Event()

    @worker.skill()
    async def reporter(params: dict, ctx: Context) -> str:
        await ctx.progress(10)
        try:
            await asyncio.sleep(10)
        finally:
            if ctx.cancelled.is_set():
                cancelled.set()
        return "never"

    harness = await harness_factory(worker)
    operator.fault("/progress", 409)
    attempt = operator.enqueue("reporter")
    await asyncio.wait_for(cancelled.wait(), 3)
    await wait_until(lambda: harness.runner.table.busy == 0, what="the slot to free")
    beats = len(operator.heartbeats)
    await wait_until(lambda: len(operator.heartbeats) > beats, what="a heartbeat")
    assert attempt not in operator.heartbeats[-1].attempt_ids
    assert attempt not in operator.reports
