"""Drain: stop claiming, let running attempts finish within the drain timeout, then
stop the rest and release them, deliver what is left, exit (docs/worker-protocol.md,
"Release, drain and disruptions")."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

from wr_fakes import FAST, FakeOperator, wait_until

from worker_runtime import Context, Worker

SHUTDOWN = "worker w1 is shutting down"


async def test_drain_finishes_running_work_and_stops_claiming(
    operator: FakeOperator, harness_factory
):
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
    await wait_until(lambda: operator.claims_cancelled == 1, what="the long poll to be given up")
    await wait_until(lambda: any(h.draining for h in operator.heartbeats), what="draining beat")
    draining_beat = next(h for h in operator.heartbeats if h.draining)
    assert draining_beat.attempt_ids == [attempt]
    claims_at_drain = len(operator.claim_ids)
    late = operator.enqueue("work")
    await asyncio.sleep(0.1)
    assert not harness.task.done()  # still finishing the running attempt
    release.set()
    await asyncio.wait_for(harness.task, 3)
    assert operator.reports[attempt] == ("complete", {"result": "finished"})
    assert len(operator.claim_ids) == claims_at_drain
    assert late not in operator.reports


async def test_the_drain_timeout_releases_running_attempts(operator: FakeOperator, harness_factory):
    worker = Worker()
    release = threading.Event()

    @worker.skill()
    def stuck(params: dict) -> str:  # a sync skill that ignores ctx.cancelled
        release.wait(5)
        return "too late"

    @worker.skill()
    async def stuck_async(params: dict) -> str:
        await asyncio.sleep(10)
        return "too late"

    @worker.skill()
    async def cooperative(params: dict, ctx: Context) -> str:
        await asyncio.wait_for(ctx.cancelled.wait(), 10)
        return f"finished in the grace ({ctx.cancel_reason})"

    harness = await harness_factory(worker, config={"concurrency": 3, "drain_timeout_seconds": 0.2})
    attempts = [operator.enqueue(s) for s in ("stuck", "stuck_async", "cooperative")]
    await wait_until(lambda: len(harness.runner.running_attempt_ids) == 3, what="all running")
    try:
        harness.runner.drain("SIGTERM")
        await asyncio.wait_for(harness.task, 3)  # not held up by the stuck thread
        for attempt in attempts[:2]:
            assert operator.reports[attempt] == ("release", {"reason": SHUTDOWN})
            # Given back: queued again at once, not counted as an attempt.
            assert operator.job_of(attempt).history == [(attempt, "release")]
        released = {attempt.rpartition(".")[0] for attempt in attempts[:2]}
        assert {job.uid for job in operator.queue} == released
        assert operator.reports[attempts[2]] == (
            "complete",
            {"result": f"finished in the grace ({SHUTDOWN})"},
        )
    finally:
        release.set()


async def test_a_second_drain_request_releases_at_once(operator: FakeOperator, harness_factory):
    worker = Worker()

    @worker.skill()
    async def long(params: dict) -> str:
        await asyncio.sleep(10)
        return "never"

    slow_grace = dataclasses.replace(FAST, release_grace_seconds=30)
    harness = await harness_factory(
        worker, config={"drain_timeout_seconds": 30}, timings=slow_grace
    )
    attempt = operator.enqueue("long")
    await wait_until(lambda: harness.runner.running_attempt_ids, what="running")
    harness.runner.drain("SIGTERM")
    harness.runner.drain("SIGINT")
    await asyncio.wait_for(harness.task, 3)
    assert operator.reports[attempt] == ("release", {"reason": SHUTDOWN})


async def test_an_assign_while_draining_is_released(operator: FakeOperator, harness_factory):
    worker = Worker()
    gate = asyncio.Event()

    @worker.skill()
    async def work(params: dict) -> str:
        await asyncio.wait_for(gate.wait(), 5)
        return "done"

    harness = await harness_factory(worker, config={"concurrency": 2, "drain_timeout_seconds": 5})
    running = operator.enqueue("work")
    await wait_until(lambda: harness.runner.running_attempt_ids, what="running")
    harness.runner.drain("SIGTERM")
    stranded = operator.enqueue("work")
    operator.give(stranded)  # a claim answer lost as the long poll was given up
    assert await harness.report(stranded) == ("release", {"reason": SHUTDOWN})
    gate.set()
    await asyncio.wait_for(harness.task, 3)
    assert operator.reports[running] == ("complete", {"result": "done"})


async def test_outcomes_are_delivered_after_the_drain_within_the_shutdown_budget(
    operator: FakeOperator, harness_factory
):
    worker = Worker()

    @worker.skill()
    async def quick(params: dict) -> str:
        return "quick"

    harness = await harness_factory(worker)
    operator.fault("/complete", 503, times=10_000)  # the operator cannot take it for a while
    attempt = operator.enqueue("quick")
    await wait_until(lambda: harness.runner.delivery.pending_ids == [attempt], what="pending")
    harness.runner.drain("SIGTERM")
    await asyncio.sleep(0.3)
    assert not harness.task.done()  # still delivering
    operator.faults.clear()
    await asyncio.wait_for(harness.task, 3)
    assert operator.reports[attempt] == ("complete", {"result": "quick"})


async def test_the_shutdown_budget_bounds_the_wait_for_an_absent_operator(
    operator: FakeOperator, harness_factory
):
    worker = Worker()

    @worker.skill()
    async def quick(params: dict) -> str:
        return "quick"

    budget = dataclasses.replace(FAST, shutdown_report_seconds=0.5)
    harness = await harness_factory(worker, timings=budget)
    operator.fault("/complete", 503, times=10_000)
    attempt = operator.enqueue("quick")
    await wait_until(lambda: harness.runner.delivery.pending_ids == [attempt], what="pending")
    harness.runner.drain("SIGTERM")
    started = time.monotonic()
    await asyncio.wait_for(harness.task, 3)
    assert 0.45 <= time.monotonic() - started < 2
    assert attempt not in operator.reports


async def test_a_thread_already_stopping_does_not_hold_up_the_exit(
    operator: FakeOperator, harness_factory
):
    worker = Worker()
    release = threading.Event()
    started = threading.Event()

    @worker.skill()
    def stuck(params: dict) -> str:  # ignores ctx.cancelled
        started.set()
        release.wait(10)
        return "too late"

    operator.fence_slack = 30
    slow_budget = dataclasses.replace(FAST, shutdown_report_seconds=10)
    harness = await harness_factory(
        worker, config={"drain_timeout_seconds": 0.1}, timings=slow_budget
    )
    attempt = operator.enqueue("stuck")
    await wait_until(started.is_set, what="the thread")
    operator.cancel(attempt, "cancelled by user", grace=0)
    await wait_until(lambda: harness.runner.table.get(attempt).stop_cause, what="stopping")
    try:
        harness.runner.drain("SIGTERM")
        await asyncio.wait_for(harness.task, 3)  # not the 10 s shutdown budget
        action, body = operator.reports[attempt]
        assert (action, body["error_type"]) == ("fail", "Cancelled")  # the first reason
    finally:
        release.set()
