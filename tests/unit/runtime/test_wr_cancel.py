"""Cancel with grace, then report once the skill returned; the attempt's own deadline
(docs/worker-protocol.md, "Cancellation, timeouts and deadlines")."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from wr_fakes import FakeOperator, wait_until

from worker_runtime import Context, Worker


class Timeline:
    """When the skill saw ctx.cancelled, and when it was cancelled."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.saw_cancelled: float | None = None
        self.cancelled_at: float | None = None
        self.reason = ""


def stubborn_worker(timeline: Timeline) -> Worker:
    worker = Worker()

    @worker.skill()
    async def stubborn(params: dict, ctx: Context) -> str:
        timeline.started.set()
        waiter = asyncio.ensure_future(ctx.cancelled.wait())
        try:
            await waiter
            timeline.saw_cancelled = time.monotonic()
            timeline.reason = ctx.cancel_reason
            await asyncio.sleep(10)  # ignores it
        except asyncio.CancelledError:
            timeline.cancelled_at = time.monotonic()
            raise
        finally:
            waiter.cancel()
        return "too late"

    @worker.skill()
    async def cooperative(params: dict, ctx: Context) -> str:
        timeline.started.set()
        await asyncio.wait_for(ctx.cancelled.wait(), 10)
        timeline.reason = ctx.cancel_reason
        if params.get("raise"):
            raise RuntimeError("interrupted")
        return f"partial result ({ctx.cancel_reason})"

    @worker.skill()
    async def never_started(params: dict) -> str:
        timeline.started.set()
        return "ran"

    return worker


@pytest.mark.parametrize(
    ("command_grace", "registered_grace"),
    [(0.4, 5.0), (None, 0.4)],  # the command's grace, else the registration answer's
)
async def test_cancel_waits_the_grace_then_cancels_and_reports_cancelled(
    operator: FakeOperator, harness_factory, command_grace, registered_grace
):
    timeline = Timeline()
    operator.cancel_grace = registered_grace
    harness = await harness_factory(stubborn_worker(timeline))
    attempt = operator.enqueue("stubborn")
    await asyncio.wait_for(timeline.started.wait(), 3)
    if command_grace is None:
        operator.command("cancel", attempt, "deleted by user")  # no grace_seconds
    else:
        operator.cancel(attempt, "deleted by user", grace=command_grace)
    action, body = await harness.report(attempt)
    assert (action, body["error_type"], body["message"], body["retryable"]) == (
        "fail",
        "Cancelled",
        "deleted by user",
        False,
    )
    assert timeline.reason == "deleted by user"
    assert timeline.saw_cancelled is not None and timeline.cancelled_at is not None
    assert 0.35 <= timeline.cancelled_at - timeline.saw_cancelled < 2.5


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ("complete", {"result": "partial result (job cancelled)"})),  # finished work wins
        ({"raise": True}, ("fail", "Cancelled")),  # an error because it was asked to stop
    ],
)
async def test_a_skill_that_returns_within_the_grace_reports_what_it_returned(
    operator: FakeOperator, harness_factory, params, expected
):
    timeline = Timeline()
    harness = await harness_factory(stubborn_worker(timeline))
    attempt = operator.enqueue("cooperative", params)
    await asyncio.wait_for(timeline.started.wait(), 3)
    operator.cancel(attempt, "job cancelled", grace=5)
    action, body = await harness.report(attempt)
    if action == "complete":
        assert (action, body) == expected
    else:
        assert (action, body["error_type"]) == expected


async def test_the_local_deadline_stops_the_skill_and_reports_timed_out(
    operator: FakeOperator, harness_factory
):
    timeline = Timeline()
    operator.cancel_grace = 0.1
    harness = await harness_factory(stubborn_worker(timeline))
    deadline = datetime.now(UTC) + timedelta(seconds=0.3)
    attempt = operator.enqueue("stubborn", deadline=deadline)
    action, body = await harness.report(attempt)
    assert (action, body["error_type"], body["retryable"]) == ("fail", "TimedOut", True)
    assert body["message"] == f"the attempt passed its deadline {deadline.isoformat()}"
    assert timeline.reason == body["message"]
    assert timeline.saw_cancelled is not None and timeline.cancelled_at is not None
    assert time.monotonic() - timeline.saw_cancelled < 3
    assert not any(c.type == "cancel" for c in operator.commands_sent)  # on its own


async def test_a_deadline_already_past_reports_timed_out_without_running(
    operator: FakeOperator, harness_factory
):
    timeline = Timeline()
    harness = await harness_factory(stubborn_worker(timeline))
    attempt = operator.enqueue("never_started", deadline=datetime.now(UTC) - timedelta(seconds=1))
    action, body = await harness.report(attempt)
    assert (action, body["error_type"]) == ("fail", "TimedOut")
    assert not timeline.started.is_set()


async def test_a_cancel_for_an_attempt_not_held_is_ignored(operator: FakeOperator, harness_factory):
    timeline = Timeline()
    harness = await harness_factory(stubborn_worker(timeline))
    operator.command("cancel", "uid-404.1", "who?")
    operator.command("abandon", "uid-405.1", "who?")
    seen = len(operator.heartbeats)
    await wait_until(lambda: len(operator.heartbeats) >= seen + 3, what="three beats")
    attempt = operator.enqueue("never_started")
    assert await harness.report(attempt) == ("complete", {"result": "ran"})
