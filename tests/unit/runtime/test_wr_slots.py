"""Slots are honest: a slot stays taken until the skill has really returned, a sync
skill's thread included, after a cancel, an abandon or a deadline; claims ask only for
really free slots (docs/worker-protocol.md, "Outcomes")."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from wr_fakes import FakeOperator, wait_until

from worker_runtime import Context, Worker


class Stuck:
    """A sync skill that ignores ctx.cancelled until the test lets its thread go."""

    def __init__(self) -> None:
        self.worker = Worker()
        self.release = threading.Event()
        self.saw_cancel = threading.Event()
        self.live = 0
        self.peak = 0
        self.calls: list[str] = []
        self._lock = threading.Lock()

        @self.worker.skill()
        def stuck(params: dict, ctx: Context) -> str:
            with self._lock:
                self.calls.append(ctx.attempt_id)
                self.live += 1
                self.peak = max(self.peak, self.live)
            try:
                while not self.release.wait(0.01):
                    if ctx.cancelled.is_set():
                        self.saw_cancel.set()
                if params.get("fail_when_cancelled") and ctx.cancelled.is_set():
                    raise RuntimeError("stopped")
                return "returned"
            finally:
                with self._lock:
                    self.live -= 1


async def beats(operator: FakeOperator, count: int) -> None:
    seen = len(operator.heartbeats)
    await wait_until(lambda: len(operator.heartbeats) >= seen + count, what=f"{count} beats")


@pytest.fixture
def stuck() -> Stuck:
    skill = Stuck()
    yield skill
    skill.release.set()  # never leave a thread behind


async def test_a_cancelled_sync_skill_keeps_its_slot_until_its_thread_returns(
    operator: FakeOperator, harness_factory, stuck: Stuck
):
    operator.fence_slack = 30  # the operator waits for the report
    harness = await harness_factory(stuck.worker, config={"concurrency": 1})
    attempt = operator.enqueue("stuck", {"fail_when_cancelled": True})
    await wait_until(lambda: stuck.calls == [attempt], what="the thread to start")
    claims = len(operator.claim_ids)
    operator.cancel(attempt, "cancelled by user", grace=0.05)
    await wait_until(stuck.saw_cancel.is_set, what="ctx.cancelled in the thread")
    await beats(operator, 5)  # well past the grace: the skill was "cancelled" ...
    assert harness.runner.table.free_slots == 0  # ... but its thread still runs
    assert len(operator.claim_ids) == claims  # so no claim was made meanwhile
    assert attempt in operator.heartbeats[-1].attempt_ids  # held, stopping
    assert attempt not in operator.reports  # reported once the skill has returned
    stuck.release.set()
    action, body = await harness.report(attempt)
    assert (action, body["error_type"], body["message"], body["retryable"]) == (
        "fail",
        "Cancelled",
        "cancelled by user",
        False,
    )
    await wait_until(lambda: len(operator.claim_ids) > claims, what="claiming again")
    assert operator.claims[-1].max_attempts == 1
    assert stuck.peak == 1


async def test_an_abandoned_sync_skill_keeps_its_slot_and_reports_nothing(
    operator: FakeOperator, harness_factory, stuck: Stuck
):
    harness = await harness_factory(stuck.worker, config={"concurrency": 1})
    abandoned = operator.enqueue("stuck")
    await wait_until(lambda: stuck.calls == [abandoned], what="the thread to start")
    claims = len(operator.claim_ids)
    operator.command("abandon", abandoned, "lease lost")
    await wait_until(stuck.saw_cancel.is_set, what="ctx.cancelled in the thread")
    await beats(operator, 5)
    assert harness.runner.table.free_slots == 0 and len(operator.claim_ids) == claims
    assert abandoned not in operator.heartbeats[-1].attempt_ids  # not held: not listed
    stuck.release.set()
    follow_up = operator.enqueue("stuck")  # the slot frees when the thread returns
    assert await harness.report(follow_up) == ("complete", {"result": "returned"})
    assert abandoned not in operator.reports and stuck.peak == 1


async def test_a_timed_out_attempt_never_overlaps_its_retry(
    operator: FakeOperator, harness_factory, stuck: Stuck
):
    harness = await harness_factory(stuck.worker, config={"concurrency": 1})
    deadline = datetime.now(UTC) + timedelta(seconds=0.2)
    first = operator.enqueue("stuck", deadline=deadline, max_attempts=2)
    await wait_until(stuck.saw_cancel.is_set, what="the local deadline")
    operator.job_of(first).deadline = None  # the retry has time enough
    operator.fence(first, "TimedOut")  # the operator's side: the retry is queued now
    await wait_until(
        lambda: any(c.type == "abandon" and c.attempt_id == first for c in operator.commands_sent),
        what="abandon for the fenced attempt",
    )
    await beats(operator, 5)
    assert stuck.calls == [first]  # the retry waits for the slot: the thread still runs
    assert len(operator.claims) == 1 and harness.runner.table.free_slots == 0
    stuck.release.set()
    retry = "uid-1.2"
    assert await harness.report(retry) == ("complete", {"result": "returned"})
    assert stuck.calls == [first, retry] and stuck.peak == 1
    assert first not in operator.reports  # abandoned: reported nothing
    assert operator.job_of(first).history == [(first, "TimedOut"), (retry, "complete")]


async def test_threads_never_exceed_concurrency_through_cancels(
    operator: FakeOperator, harness_factory, stuck: Stuck
):
    harness = await harness_factory(stuck.worker, config={"concurrency": 2})
    attempts = [operator.enqueue("stuck", {"fail_when_cancelled": True}) for _ in range(4)]
    await wait_until(lambda: len(stuck.calls) == 2, what="two threads")
    for attempt in stuck.calls:
        operator.cancel(attempt, grace=0)
    await beats(operator, 5)
    assert len(stuck.calls) == 2 and harness.runner.table.free_slots == 0
    stuck.release.set()
    for attempt in attempts[2:]:
        assert (await harness.report(attempt))[0] == "complete"
    assert stuck.peak == 2
