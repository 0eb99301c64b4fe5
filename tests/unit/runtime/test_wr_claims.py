"""Claims carry request ids, a lost claim answer never costs an attempt, and each
attempt id starts at most once, from a claim or an ``assign`` (docs/worker-protocol.md,
"Claiming")."""

from __future__ import annotations

import asyncio

import pytest
from wr_fakes import DROP, FakeOperator, wait_until

from worker_runtime import Context, Worker
from worker_runtime.slots import RecentIds


def counting_worker() -> tuple[Worker, list[str], asyncio.Event]:
    worker = Worker()
    executions: list[str] = []
    gate = asyncio.Event()

    @worker.skill()
    async def count(params: dict, ctx: Context) -> str:
        executions.append(ctx.attempt_id)
        return ctx.attempt_id

    @worker.skill()
    async def block(params: dict, ctx: Context) -> str:
        executions.append(ctx.attempt_id)
        await asyncio.wait_for(gate.wait(), 10)
        return "unblocked"

    return worker, executions, gate


async def test_every_new_claim_has_a_fresh_request_id(operator: FakeOperator, harness_factory):
    worker, _, _ = counting_worker()
    harness = await harness_factory(worker)
    for _ in range(3):
        await harness.report(operator.enqueue("count"))
    await wait_until(lambda: len(operator.claims) >= 4, what="four claims")
    ids = [c.request_id for c in operator.claims]
    assert all(ids) and len(set(ids)) == len(ids)


@pytest.mark.parametrize("fault", [DROP, 500, 503, 429])
async def test_a_claim_without_an_answer_is_retried_with_the_same_request_id(
    operator: FakeOperator, harness_factory, fault
):
    worker, executions, _ = counting_worker()
    attempt = operator.enqueue("count")  # queued before the first claim
    operator.fault("/claim", fault)
    harness = await harness_factory(worker)
    assert await harness.report(attempt) == ("complete", {"result": attempt})
    assert executions == [attempt]  # ran once
    assert operator.job_of(attempt).history == [(attempt, "complete")]  # no attempt lost
    if fault == DROP:  # processed, answer lost: the retry got the same assignment again
        assert operator.claim_answers[:2] == [[attempt], [attempt]]
    else:  # refused before processing: the retry was the first to be processed
        assert operator.claim_answers[0] == [attempt]
    await wait_until(lambda: len(operator.claim_ids) >= 3, what="the next claim")
    first, retry, after = operator.claim_ids[:3]
    assert first and retry == first  # no answer: the same id
    assert after != first  # answered: a fresh id


async def test_a_claim_answer_and_an_assign_start_an_attempt_once(
    operator: FakeOperator, harness_factory
):
    worker, executions, gate = counting_worker()
    attempt = operator.enqueue("block")
    operator.fault("/claim", DROP)  # the claim is written, its answer lost ...
    operator.fault("/claim", 500, times=20)  # ... and its retries fail for a while
    harness = await harness_factory(worker)
    # A heartbeat that does not list the attempt is answered with assign: it starts.
    await wait_until(lambda: executions == [attempt], what="the assigned attempt to start")
    assert [c.type for c in operator.commands_sent][:1] == ["assign"]
    # Then the claim's retry gets through, with the same id: the replay carries it too.
    await wait_until(lambda: len(operator.claims) >= 2, 5, "the replaying claim")
    assert operator.claims[1].request_id == operator.claims[0].request_id
    assert operator.claim_answers[1] == [attempt]
    gate.set()
    assert await harness.report(attempt) == ("complete", {"result": "unblocked"})
    assert executions == [attempt]  # the replay was ignored: started once
    assert [c for c in operator.report_calls if c[0] == attempt] == [(attempt, "complete")]


async def test_assign_starts_an_attempt_the_worker_did_not_list(
    operator: FakeOperator, harness_factory
):
    worker, executions, _ = counting_worker()
    harness = await harness_factory(worker)
    attempt = operator.enqueue("count")
    operator.give(attempt)  # written for w1; the claim answer never arrived
    assert await harness.report(attempt) == ("complete", {"result": attempt})
    assert executions == [attempt]
    assert [c.type for c in operator.commands_sent] == ["assign"]


async def test_assign_without_a_free_slot_is_released(operator: FakeOperator, harness_factory):
    worker, executions, gate = counting_worker()
    harness = await harness_factory(worker, config={"concurrency": 1})
    busy = operator.enqueue("block")
    await wait_until(lambda: executions == [busy], what="the slot to be taken")
    extra = operator.enqueue("count")
    operator.give(extra)
    action, body = await harness.report(extra)
    assert (action, body) == ("release", {"reason": "worker w1 has no free slot"})
    assert executions == [busy]
    # The operator queued the job again at once, as its next attempt: it runs when
    # the slot frees.
    gate.set()
    assert (await harness.report("uid-2.2"))[0] == "complete"
    assert operator.job_of(extra).history == [(extra, "release"), ("uid-2.2", "complete")]


async def test_assign_for_an_attempt_already_started_is_ignored(
    operator: FakeOperator, harness_factory
):
    worker, executions, _ = counting_worker()
    harness = await harness_factory(worker)
    done = operator.enqueue("count")
    await harness.report(done)
    await wait_until(lambda: not harness.runner.delivery.pending_ids, what="settled")
    repeat = operator.assignments[done]
    operator.command("assign", assignment=repeat)  # an attempt it has started before
    operator.command("assign")  # and a malformed one, without an assignment
    beats = len(operator.heartbeats)
    await wait_until(lambda: len(operator.heartbeats) >= beats + 3, what="three more beats")
    assert any(c.assignment == repeat for c in operator.commands_sent)
    assert executions == [done]  # not started again ...
    assert [c for c in operator.report_calls if c[0] == done] == [
        (done, "complete")
    ]  # ... nor released
    assert harness.runner.running_attempt_ids == []


async def test_over_capacity_claim_answers_are_released(operator: FakeOperator, harness_factory):
    worker, executions, gate = counting_worker()
    operator.extra_assignments = 1  # a buggy operator: one more than max_attempts
    harness = await harness_factory(worker, config={"concurrency": 1})
    first, second = operator.enqueue("block"), operator.enqueue("block")
    action, body = await harness.report(second)
    assert (action, body["reason"]) == ("release", "worker w1 has no free slot")
    assert harness.runner.running_attempt_ids == [first]
    gate.set()
    assert await harness.report(first) == ("complete", {"result": "unblocked"})
    assert second not in executions  # released, never run


def test_started_ids_are_remembered_up_to_a_bound() -> None:
    ids = RecentIds(size=1024)
    for i in range(1500):
        ids.add(f"u.{i}")
    assert len(ids) == 1024
    assert "u.475" not in ids and "u.476" in ids and "u.1499" in ids
    ids.add("u.476")  # seen again: now the most recent
    for i in range(1500, 2523):
        ids.add(f"u.{i}")
    assert "u.476" in ids and "u.477" not in ids
