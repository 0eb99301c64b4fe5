"""Outcome delivery survives operator absence: re-sent with backoff until an answer
settles it, kept in every heartbeat meanwhile (docs/worker-protocol.md, "Outcomes")."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from wr_fakes import FAST, FakeOperator, wait_until
from wr_http import Reply

from worker_runtime import Context, Worker


def gated_worker() -> tuple[Worker, asyncio.Event, list[str]]:
    """A skill that runs until the test opens the gate; records each execution."""
    worker = Worker()
    gate = asyncio.Event()
    executions: list[str] = []

    @worker.skill()
    async def job(params: dict, ctx: Context) -> dict:
        executions.append(ctx.attempt_id)
        await asyncio.wait_for(gate.wait(), 10)
        return {"done": params.get("n", 0)}

    return worker, gate, executions


async def test_an_outcome_outlives_an_operator_that_was_away_for_many_leases(
    operator: FakeOperator, harness_factory
) -> None:
    operator.lease_seconds = 0.3
    worker, gate, executions = gated_worker()
    harness = await harness_factory(worker, config={"outcome_retry_seconds": 30})
    attempt = operator.enqueue("job", {"n": 1})
    await wait_until(lambda: executions, what="the skill to start")
    await operator.go_away()  # the operator process is killed: connections are refused
    gate.set()  # the skill finishes while nobody can hear it
    away = time.monotonic()
    await wait_until(lambda: time.monotonic() - away > 1.2, what="an absence of four leases")
    assert harness.runner.delivery.pending_ids == [attempt]
    assert attempt in harness.runner.heartbeats.held_ids()
    await operator.come_back(restarted=True)  # forgot the worker: 404 worker_not_registered
    assert await harness.report(attempt) == ("complete", {"result": {"done": 1}})
    assert executions == [attempt]  # ran once
    assert operator.job_of(attempt).history == [(attempt, "complete")]  # no LeaseExpired
    assert len(operator.registers) == 2  # registered again before re-sending


async def test_a_pending_outcome_stays_in_every_heartbeat_until_settled(
    operator: FakeOperator, harness_factory
) -> None:
    worker, gate, _ = gated_worker()
    harness = await harness_factory(worker)
    operator.fault("/complete", 500, times=10_000)
    attempt = operator.enqueue("job")
    gate.set()
    await wait_until(lambda: len(operator.report_calls) >= 3, what="refused reports")
    assert harness.runner.table.busy == 0  # the skill returned: its slot is free ...
    beats = len(operator.heartbeats)
    await wait_until(lambda: len(operator.heartbeats) >= beats + 3, what="three more beats")
    assert all(attempt in h.attempt_ids for h in operator.heartbeats[beats:])  # ... its lease kept
    operator.faults.clear()
    assert (await harness.report(attempt))[0] == "complete"
    beats = len(operator.heartbeats)
    await wait_until(lambda: len(operator.heartbeats) >= beats + 2, what="two more beats")
    assert attempt not in operator.heartbeats[-1].attempt_ids


@pytest.mark.parametrize(
    ("status", "code", "dropped_metric"),
    [
        (409, "attempt_not_current", True),
        (404, "unknown_attempt", True),
        (413, "too_large", True),
        (400, "malformed", False),
        (422, "invalid", False),
        (403, "other_pool", False),
    ],
)
async def test_answers_that_settle_a_report_end_its_delivery(
    operator: FakeOperator, harness_factory, status: int, code: str, dropped_metric: bool
) -> None:
    worker, gate, _ = gated_worker()
    gate.set()
    harness = await harness_factory(worker)
    operator.fault("/complete", status, code)
    settled = operator.enqueue("job")
    await wait_until(lambda: operator.report_calls, what="the refused report")
    follow_up = operator.enqueue("job")
    assert (await harness.report(follow_up))[0] == "complete"
    # One try, not re-sent, nothing else reported for it, and not held any more.
    assert [c for c in operator.report_calls if c[0] == settled] == [(settled, f"HTTP {status}")]
    await wait_until(lambda: not harness.runner.delivery.pending_ids, what="nothing pending")
    assert settled not in harness.runner.heartbeats.held_ids()
    metrics = harness.runner.metrics.render().decode()
    dropped = 'shiftboss_worker_attempts_dropped_total{skill="job"} 1.0' in metrics
    assert dropped is dropped_metric


async def test_worker_not_registered_registers_again_then_resends(
    operator: FakeOperator, harness_factory
) -> None:
    worker, gate, _ = gated_worker()
    gate.set()
    harness = await harness_factory(worker)
    operator.fault("/complete", 404, "worker_not_registered")
    attempt = operator.enqueue("job")
    assert (await harness.report(attempt))[0] == "complete"
    assert [c[1] for c in operator.report_calls] == ["HTTP 404", "complete"]
    assert len(operator.registers) == 2


async def test_retry_after_is_honoured(operator: FakeOperator, harness_factory) -> None:
    worker, gate, _ = gated_worker()
    gate.set()
    harness = await harness_factory(worker)
    busy = Reply(429, {"error": {"code": "busy", "message": "slow down"}}, {"Retry-After": "0.5"})
    operator.fault("/complete", busy)
    attempt = operator.enqueue("job")
    await wait_until(lambda: operator.report_calls, what="the throttled report")
    throttled = time.monotonic()
    await harness.report(attempt)
    assert time.monotonic() - throttled >= 0.45  # FAST backoff alone would be 0.01 s


async def test_the_budget_ends_delivery(operator: FakeOperator, harness_factory) -> None:
    worker, gate, _ = gated_worker()
    harness = await harness_factory(worker, config={"outcome_retry_seconds": 0.3})
    attempt = operator.enqueue("job")
    operator.fault("/complete", 503, times=10_000)
    gate.set()
    await wait_until(lambda: operator.report_calls, what="the first try")
    started = time.monotonic()
    await wait_until(lambda: not harness.runner.delivery.pending_ids, what="giving up")
    assert 0.2 <= time.monotonic() - started < 2
    tries = len(operator.report_calls)
    assert tries >= 3  # retried with backoff within the budget
    beats = len(operator.heartbeats)
    await wait_until(lambda: len(operator.heartbeats) >= beats + 2, what="two more beats")
    assert len(operator.report_calls) == tries and attempt not in operator.reports
    assert attempt not in operator.heartbeats[-1].attempt_ids


async def test_reports_are_resent_at_once_when_the_operator_answers_again(
    operator: FakeOperator, harness_factory
) -> None:
    slow = dataclasses.replace(FAST, retry_initial_seconds=20, retry_max_seconds=20)
    worker, gate, _ = gated_worker()
    harness = await harness_factory(worker, timings=slow)
    attempt = operator.enqueue("job")
    await wait_until(lambda: harness.runner.running_attempt_ids, what="the attempt to start")
    operator.outage(503)
    gate.set()
    await wait_until(lambda: harness.runner.delivery.pending_ids, what="the outcome")
    await asyncio.sleep(0.2)  # the first try fails, the next is 10-20 s away
    operator.outage(None)
    back = time.monotonic()
    await harness.report(attempt, timeout=5)
    assert time.monotonic() - back < 3  # re-sent on the first answered heartbeat
