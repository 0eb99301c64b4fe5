"""The worker's own view of its leases: it lapses while the operator is unreachable
(timeouts, resets, 5xx, 429) and then stops the work and reports ``LeaseExpired``; it
does not lapse while the operator is absent (connection refused, 503)."""

from __future__ import annotations

import asyncio
import time

import pytest
from wr_fakes import FakeOperator, wait_until
from wr_http import HANG, RESET

from worker_runtime import Context, Worker
from worker_runtime.lease import LeaseClock


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_lease_clock_stops_while_the_operator_is_absent() -> None:
    t = FakeTime()
    clock = LeaseClock(t)
    valid_until = clock.now() + 10  # answered at 100: valid for 10 s of lease time
    t.now = 105
    clock.operator_absent()  # refused from 105 ...
    t.now = 500
    clock.operator_absent()  # ... still refused (the first observation counts)
    assert not clock.lapsed(valid_until) and clock.absent
    clock.operator_seen()  # unreachable from 500: lease time runs again
    assert clock.now() == 105
    t.now = 504.9
    assert not clock.lapsed(valid_until)
    t.now = 505.1
    assert clock.lapsed(valid_until)  # 5 s of lease time before the absence, 5 s after


def test_a_lease_never_lapses_while_absent_even_if_already_due() -> None:
    t = FakeTime()
    clock = LeaseClock(t)
    valid_until = clock.now() + 1
    t.now = 102
    assert clock.lapsed(valid_until)
    clock.operator_absent()
    assert not clock.lapsed(valid_until)


def waiting_worker() -> tuple[Worker, asyncio.Event, list[str], list[str]]:
    worker = Worker()
    gate = asyncio.Event()
    reasons: list[str] = []
    executions: list[str] = []

    @worker.skill()
    async def wait(params: dict, ctx: Context) -> str:
        executions.append(ctx.attempt_id)
        try:
            await asyncio.wait_for(gate.wait(), 10)
        finally:
            if ctx.cancelled.is_set():
                reasons.append(ctx.cancel_reason)
        return "done"

    return worker, gate, reasons, executions


@pytest.mark.parametrize("trouble", [HANG, RESET, 500, 429])
async def test_unreachable_lapses_the_lease_stops_the_work_and_reports_lease_expired(
    operator: FakeOperator, harness_factory, trouble
):
    operator.lease_seconds = 0.4
    operator.cancel_grace = 0.05
    worker, _, reasons, executions = waiting_worker()
    harness = await harness_factory(worker)
    attempt = operator.enqueue("wait")
    await wait_until(lambda: executions, what="the skill to start")
    operator.outage(trouble)
    cut_off = time.monotonic()
    await wait_until(lambda: reasons, 5, "the skill to be stopped")
    assert time.monotonic() - cut_off >= 0.3  # not before the lease could have lapsed
    assert reasons == [
        "worker w1 could not renew its lease with the operator for 0.4s; the work may already run elsewhere"
    ]
    sent = f"/v1/attempts/{attempt}/fail"
    await wait_until(lambda: any(p == sent for p, _ in operator.requests), 5, "the report")
    [body, *_] = [b for p, b in operator.requests if p == sent]
    assert (body["error_type"], body["retryable"]) == ("LeaseExpired", True)
    assert attempt in harness.runner.heartbeats.held_ids()  # held until settled
    operator.outage(None)
    # Settled once the operator answers: by 409 (it expired the lease too), or by its
    # abandon if a heartbeat gets there first.  Either way nothing ran twice here.
    await wait_until(lambda: not harness.runner.heartbeats.held_ids(), 5, "settled")
    assert operator.job_of(attempt).history == [(attempt, "LeaseExpired")]
    assert attempt not in operator.reports and executions == [attempt]


@pytest.mark.parametrize("absence", ["refused", 503])
async def test_absent_does_not_lapse_the_lease(operator: FakeOperator, harness_factory, absence):
    operator.lease_seconds = 0.3
    worker, gate, reasons, executions = waiting_worker()
    harness = await harness_factory(worker)
    attempt = operator.enqueue("wait")
    await wait_until(lambda: executions, what="the skill to start")
    if absence == "refused":
        await operator.go_away()
    else:
        operator.outage(503)
    away = time.monotonic()
    await wait_until(lambda: time.monotonic() - away > 1.0, what="three leases and more")
    assert harness.runner.running_attempt_ids == [attempt] and reasons == []
    if absence == "refused":
        await operator.come_back(restarted=True)
    else:
        operator.outage(None)
    gate.set()
    assert await harness.report(attempt) == ("complete", {"result": "done"})
    assert operator.job_of(attempt).history == [(attempt, "complete")]
    assert reasons == []
