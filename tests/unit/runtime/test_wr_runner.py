"""The worker loop against a fake operator: outcomes, concurrency, commands, drain."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic import BaseModel
from wr_fakes import FakeOperator, Harness, wait_until

from worker_runtime import Context, FatalError, RetryableError, Worker


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


async def test_extra_assignments_are_handed_back(operator, harness_factory):
    worker = Worker()
    gate = asyncio.Event()

    @worker.skill()
    async def wait(params: dict) -> str:
        await asyncio.wait_for(gate.wait(), 3)
        return "done"

    operator.extra_assignments = 1  # a buggy operator: one more than max_attempts
    harness = await harness_factory(worker, config={"concurrency": 1})
    first, second = operator.enqueue("wait"), operator.enqueue("wait")
    action, body = await harness.report(second)
    assert (action, body["error_type"], body["retryable"]) == ("fail", "WorkerOverCapacity", True)
    assert harness.runner.running_attempt_ids == [first]
    gate.set()
    assert await harness.report(first) == ("complete", {"result": "done"})


async def test_cancel_command_sets_ctx_cancelled(operator, harness_factory):
    worker = Worker()
    started = asyncio.Event()

    @worker.skill()
    async def cooperative(params: dict, ctx: Context) -> str:
        started.set()
        await asyncio.wait_for(ctx.cancelled.wait(), 3)
        return f"stopped: {ctx.cancel_reason}"

    harness = await harness_factory(worker)
    attempt = operator.enqueue("cooperative")
    await asyncio.wait_for(started.wait(), 3)
    operator.command("cancel", attempt, "job cancelled by user")
    assert await harness.report(attempt) == (
        "complete",
        {"result": "stopped: job cancelled by user"},
    )


async def test_cancel_command_cancels_a_stubborn_skill_after_the_grace(operator, harness_factory):
    worker = Worker()
    started = asyncio.Event()

    @worker.skill()
    async def stubborn(params: dict) -> str:
        started.set()
        await asyncio.sleep(10)
        return "too late"

    harness = await harness_factory(worker, cancel_grace_seconds=0.1)
    attempt = operator.enqueue("stubborn")
    await asyncio.wait_for(started.wait(), 3)
    operator.command("cancel", attempt, "timed out")
    action, body = await harness.report(attempt)
    assert (action, body["error_type"], body["message"], body["retryable"]) == (
        "fail",
        "Cancelled",
        "timed out",
        False,
    )


async def test_abandon_reports_nothing_and_frees_the_slot(operator, harness_factory):
    worker = Worker()
    started = asyncio.Event()

    @worker.skill()
    async def slow(params: dict) -> str:
        started.set()
        await asyncio.sleep(10)
        return "never"

    @worker.skill()
    async def quick(params: dict) -> str:
        return "ok"

    harness = await harness_factory(worker, config={"concurrency": 1})
    abandoned = operator.enqueue("slow")
    await asyncio.wait_for(started.wait(), 3)
    operator.command("abandon", abandoned, "lease lost")
    await wait_until(lambda: not harness.runner.running_attempt_ids, what="the slot to free")
    follow_up = operator.enqueue("quick")
    assert await harness.report(follow_up) == ("complete", {"result": "ok"})
    assert abandoned not in operator.reports


async def test_409_on_a_report_drops_the_attempt(operator, harness_factory):
    harness = await harness_factory(make_worker())
    operator.faults.append(("/complete", 409))
    dropped = operator.enqueue("resize", {"url": "a", "width": 1})
    await wait_until(lambda: operator.report_calls, what="the refused report")
    nxt = operator.enqueue("resize", {"url": "b", "width": 2})
    assert await harness.report(nxt) == ("complete", {"result": {"url": "b", "width": 2}})
    # One refused try, no retry, no fail report afterwards.
    assert [c for c in operator.report_calls if c[0] == dropped] == [(dropped, "HTTP 409")]
    metrics = harness.runner.metrics.render().decode()
    assert 'shiftboss_worker_attempts_dropped_total{skill="resize"} 1.0' in metrics


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
    operator.faults.append(("/progress", 409))
    attempt = operator.enqueue("reporter")
    await asyncio.wait_for(cancelled.wait(), 3)
    await wait_until(lambda: not harness.runner.running_attempt_ids, what="the drop")
    assert attempt not in operator.reports


async def test_5xx_on_a_report_is_retried(operator, harness_factory):
    harness = await harness_factory(make_worker())
    operator.faults += [("/complete", 503), ("/complete", 503), ("/complete", 503)]
    attempt = operator.enqueue("resize", {"url": "a", "width": 1})
    assert (await harness.report(attempt))[0] == "complete"
    assert [c for c in operator.report_calls if c[0] == attempt][-1] == (attempt, "complete")


async def test_drain_finishes_running_work_and_stops_claiming(operator, harness_factory):
    worker = Worker()
    started = asyncio.Event()
    release = asyncio.Event()

    @worker.skill()
    async def work(params: dict) -> str:
        started.set()
        await asyncio.wait_for(release.wait(), 3)
        return "finished"

    operator.heartbeat_interval = 30  # so the draining beat can only come from the drain
    harness = await harness_factory(worker, config={"concurrency": 2})
    attempt = operator.enqueue("work")
    await asyncio.wait_for(started.wait(), 3)
    await wait_until(lambda: len(operator.claims) >= 2, what="the second (long-poll) claim")
    harness.runner.drain("SIGTERM")
    assert not harness.runner.ready
    await wait_until(lambda: operator.claims_cancelled == 1, what="the long poll to be cancelled")
    await wait_until(lambda: any(h.draining for h in operator.heartbeats), what="draining beat")
    draining_beat = next(h for h in operator.heartbeats if h.draining)
    assert draining_beat.attempt_ids == [attempt]
    claims_at_drain = len(operator.claims)
    late = operator.enqueue("work")
    await asyncio.sleep(0.1)
    assert not harness.task.done()  # still finishing the running attempt
    release.set()
    await asyncio.wait_for(harness.task, 3)
    assert operator.reports[attempt] == ("complete", {"result": "finished"})
    assert len(operator.claims) == claims_at_drain
    assert late not in operator.reports


async def test_drain_timeout_hands_back_running_attempts(operator, harness_factory):
    worker = Worker()
    started = threading.Event()
    release = threading.Event()

    @worker.skill()
    def stuck(params: dict) -> str:  # a sync skill that ignores ctx.cancelled
        started.set()
        release.wait(5)
        return "too late"

    @worker.skill()
    async def stuck_async(params: dict) -> str:
        await asyncio.sleep(10)
        return "too late"

    harness = await harness_factory(worker, config={"concurrency": 2, "drain_timeout_seconds": 0.2})
    sync_attempt = operator.enqueue("stuck")
    async_attempt = operator.enqueue("stuck_async")
    await wait_until(lambda: len(harness.runner.running_attempt_ids) == 2, what="both running")
    try:
        harness.runner.drain("SIGTERM")
        await asyncio.wait_for(harness.task, 3)  # not held up by the stuck thread
        for attempt in (sync_attempt, async_attempt):
            action, body = operator.reports[attempt]
            assert (action, body["error_type"], body["retryable"]) == (
                "fail",
                "WorkerShutdown",
                True,
            )
    finally:
        release.set()


async def test_second_drain_request_stops_waiting(operator, harness_factory):
    worker = Worker()

    @worker.skill()
    async def long(params: dict) -> str:
        await asyncio.sleep(10)
        return "never"

    harness = await harness_factory(worker, config={"drain_timeout_seconds": 30})
    attempt = operator.enqueue("long")
    await wait_until(lambda: harness.runner.running_attempt_ids, what="running")
    harness.runner.drain("SIGTERM")
    harness.runner.drain("SIGINT")
    await asyncio.wait_for(harness.task, 3)
    assert operator.reports[attempt][1]["error_type"] == "WorkerShutdown"


async def test_register_retries_until_the_operator_answers(operator, harness_factory):
    operator.faults += [("/register", 503)] * 4  # two tries of two requests each fail
    harness = await harness_factory(make_worker())
    assert harness.runner.registered
    assert len(operator.registers) == 1


async def test_unauthorized_register_is_fatal(operator, harness_factory):
    from worker_runtime.errors import Unauthorized

    operator.faults.append(("/register", 401))
    harness = await harness_factory(make_worker())
    with pytest.raises(Unauthorized, match="injected 401"):
        await asyncio.wait_for(harness.task, 3)


async def test_unknown_worker_registers_again(operator, harness_factory):
    harness = await harness_factory(make_worker())
    operator.faults.append(("/heartbeat", 404))
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


async def test_report_after_an_operator_restart_registers_again(operator, harness_factory):
    harness = await harness_factory(make_worker())
    operator.faults.append(("/complete", 404, "worker_not_registered"))
    attempt = operator.enqueue("resize", {"url": "u", "width": 1})
    assert (await harness.report(attempt))[0] == "complete"
    assert len(operator.registers) == 2


async def test_report_for_an_unknown_attempt_is_dropped(operator, harness_factory):
    harness = await harness_factory(make_worker())
    operator.faults.append(("/fail", 404, "unknown_attempt"))
    gone = operator.enqueue("fatal")
    await wait_until(lambda: operator.report_calls, what="the refused report")
    nxt = operator.enqueue("resize", {"url": "u", "width": 1})
    assert (await harness.report(nxt))[0] == "complete"
    assert operator.report_calls[0] == (gone, "HTTP 404") and gone not in operator.reports
    assert len(operator.registers) == 1
