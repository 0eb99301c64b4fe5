"""Heartbeats list every attempt held; a heartbeat gives up after one interval and is
not retried by the client: the next beat is the retry (docs/worker-protocol.md,
"Leases and heartbeats")."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import pytest
from wr_fakes import FAST, FakeOperator, wait_until
from wr_http import HANG

from worker_runtime import Context, Worker
from worker_runtime.timings import Timings


@pytest.mark.parametrize(("interval", "timeout"), [(0.05, 1.0), (5, 5), (30, 10)])
def test_the_heartbeat_timeout_is_one_interval_bounded_to_1_to_10_seconds(interval, timeout):
    assert Timings().heartbeat_timeout(interval) == timeout


async def test_heartbeats_list_running_stopping_and_undelivered_attempts(
    operator: FakeOperator, harness_factory
):
    worker = Worker()
    gate = asyncio.Event()
    thread_gate = threading.Event()

    @worker.skill()
    async def hold(params: dict) -> str:
        await asyncio.wait_for(gate.wait(), 10)
        return "held"

    @worker.skill()
    def stubborn(params: dict, ctx: Context) -> str:
        thread_gate.wait(10)  # ignores ctx.cancelled
        return "late"

    @worker.skill()
    async def quick(params: dict) -> str:
        return "quick"

    operator.fence_slack = 30
    harness = await harness_factory(worker, config={"concurrency": 3})
    try:
        running = operator.enqueue("hold")
        stopping = operator.enqueue("stubborn")
        await wait_until(lambda: len(harness.runner.running_attempt_ids) == 2, what="both")
        operator.cancel(stopping, grace=0)
        await wait_until(lambda: harness.runner.table.get(stopping).stop_cause, what="stopping")
        operator.fault("/complete", 503, times=10_000)
        undelivered = operator.enqueue("quick")
        await wait_until(
            lambda: harness.runner.delivery.pending_ids == [undelivered], what="pending"
        )
        beats = len(operator.heartbeats)
        await wait_until(lambda: len(operator.heartbeats) > beats, what="the next beat")
        assert set(operator.heartbeats[-1].attempt_ids) == {running, stopping, undelivered}
    finally:
        thread_gate.set()
        gate.set()
        operator.faults.clear()


async def test_a_hung_heartbeat_times_out_after_one_interval_and_is_not_retried(
    operator: FakeOperator, harness_factory
):
    operator.heartbeat_interval = 0.3
    timings = dataclasses.replace(FAST, heartbeat_timeout_min_seconds=0.1)
    worker = Worker()

    @worker.skill()
    async def noop(params: dict) -> None:
        return None

    await harness_factory(worker, timings=timings)
    await wait_until(lambda: operator.heartbeat_times, what="a first beat")
    operator.fault("/heartbeat", HANG)
    before = operator.heartbeat_times[-1]
    await wait_until(lambda: operator.server.hangs, what="the hung beat to be given up")
    [(path, held)] = operator.server.hangs
    assert path == "/v1/workers/w1/heartbeat"
    assert 0.25 <= held < 1.0  # the client gave up after one interval (0.3 s)
    await wait_until(lambda: operator.heartbeat_times[-1] > before, what="the next beat")
    # wait, hang, wait: the retry is the next beat, not an immediate second request.
    assert operator.heartbeat_times[-1] - before >= 0.85
    assert (
        len([p for p, _ in operator.requests if p.endswith("/heartbeat")])
        == len(operator.heartbeat_times) + 1
    )
