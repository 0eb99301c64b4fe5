"""``worker_runtime.testing``: a skill run in-process reports as it would on a worker."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from worker_runtime import Context, FatalError, RetryableError, Worker
from worker_runtime.protocol import MAX_INLINE_RESULT_BYTES
from worker_runtime.testing import Progress, SkillEnvironment, Status

skill_log = logging.getLogger("tests.wr_testing.skill")


class Thumb(BaseModel):
    url: str
    width: int


class Made(BaseModel):
    at: datetime
    size: int


def make_worker(calls: list[str]) -> Worker:
    worker = Worker()

    @worker.skill()
    async def thumb(params: Thumb, ctx: Context) -> Made:
        calls.append("thumb")
        await ctx.progress(150, "x" * 2000)  # clamped and cut as sent
        await ctx.progress(40, "fetching")
        ctx.logger.info("fetched %s", params.url)
        skill_log.warning("module logger, job %s attempt %d", ctx.job.name, ctx.attempt)
        return Made(at=datetime(2024, 5, 1, tzinfo=UTC), size=params.width)

    @worker.skill()
    def sync_thumb(params: Thumb, ctx: Context) -> dict:
        ctx.progress_sync(10, "in a thread")
        skill_log.info("sync %s", threading.current_thread().name)
        return {"width": params.width}

    @worker.skill()
    async def fail(params: dict) -> None:
        kind = params["kind"]
        if kind == "fatal":
            raise FatalError("bad input")
        if kind == "retry":
            raise RetryableError("busy", after=7)
        raise KeyError("surprise")

    @worker.skill()
    async def result(params: dict) -> object:
        return object() if params["kind"] == "object" else "x" * MAX_INLINE_RESULT_BYTES

    @worker.skill()
    async def waits(params: dict, ctx: Context) -> dict:
        calls.append("waits")
        await asyncio.wait_for(ctx.cancelled.wait(), 10)
        if params.get("raise"):
            raise RuntimeError("interrupted")
        return {"partial": True, "reason": ctx.cancel_reason, "left": ctx.seconds_left()}

    @worker.skill()
    async def stubborn(params: dict, ctx: Context) -> str:
        await ctx.cancelled.wait()
        calls.append(f"saw {time.monotonic()}")
        try:
            await asyncio.sleep(10)  # ignores it
        except asyncio.CancelledError:
            calls.append(f"cancelled {time.monotonic()}")
            raise
        return "too late"

    @worker.skill()
    def polls(params: dict, ctx: Context) -> str:
        while not ctx.cancelled.is_set():
            time.sleep(0.01)
        raise RuntimeError(ctx.cancel_reason)

    @worker.skill()
    async def about(params: dict, ctx: Context) -> dict:
        return {"job": [ctx.job.namespace, ctx.job.name], "attempt": ctx.attempt}

    return worker


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def env(calls: list[str]) -> SkillEnvironment:
    return SkillEnvironment(make_worker(calls), cancel_grace=0.3)


async def test_success_stores_json_and_records_progress(env: SkillEnvironment):
    outcome = await env.run("thumb", {"url": "https://x/a.png", "width": 64})
    assert outcome.succeeded and outcome.status == Status.succeeded, outcome
    assert outcome.result == {"at": "2024-05-01T00:00:00Z", "size": 64}  # JSON, as stored
    assert outcome.error is None
    assert outcome.progress == [(100.0, "x" * 1024), Progress(40.0, "fetching")]


async def test_a_sync_skill_runs_in_a_thread_and_reports_progress(env: SkillEnvironment):
    outcome = await env.run("sync_thumb", {"url": "u", "width": "5"})  # lax, as on a worker
    assert (outcome.result, outcome.progress) == ({"width": 5}, [(10.0, "in a thread")])
    assert outcome.messages == ["sync skill-sync_thumb", "succeeded"]


def test_run_sync_from_a_sync_test(env: SkillEnvironment):
    assert env.run_sync("sync_thumb", {"url": "u", "width": 3}).result == {"width": 3}


async def test_params_that_break_the_schema_fail_as_invalid_params(
    env: SkillEnvironment, calls: list[str]
):
    outcome = await env.run("thumb", {"url": "u", "width": "wide"})
    assert outcome.failed and outcome.error is not None
    assert (outcome.error.error_type, outcome.error.retryable) == ("InvalidParams", False)
    assert "width: Input should be a valid integer" in outcome.error.message
    assert calls == []


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("fatal", ("FatalError", "bad input", False, None)),
        ("retry", ("RetryableError", "busy", True, 7.0)),
        ("other", ("KeyError", "'surprise'", True, None)),
    ],
)
async def test_errors_map_as_on_a_worker(env: SkillEnvironment, kind, expected):
    outcome = await env.run("fail", {"kind": kind})
    error = outcome.error
    assert outcome.failed and error is not None
    assert (error.error_type, error.message, error.retryable, error.retry_after_seconds) == expected


@pytest.mark.parametrize(
    ("kind", "error_type"), [("object", "InvalidResult"), ("big", "ResultTooLarge")]
)
async def test_results_the_operator_cannot_store_fail(env: SkillEnvironment, kind, error_type):
    outcome = await env.run("result", {"kind": kind})
    assert outcome.error is not None
    assert (outcome.error.error_type, outcome.error.retryable) == (error_type, False)


async def test_cancel_after_finished_work_is_kept(env: SkillEnvironment):
    outcome = await env.run("waits", {}, cancel_after=0.05, cancel_reason="user said stop")
    assert outcome.succeeded, outcome
    assert outcome.result == {"partial": True, "reason": "user said stop", "left": None}


async def test_cancel_after_an_error_while_stopping_is_cancelled(env: SkillEnvironment):
    outcome = await env.run("waits", {"raise": True}, cancel_after=0.05)
    assert outcome.cancelled and outcome.status == Status.cancelled, outcome
    assert outcome.error is not None
    assert (outcome.error.error_type, outcome.error.message) == (
        "Cancelled",
        "cancelled by the test",
    )
    assert (
        outcome.messages[0]
        == f"stopping attempt {outcome.logs[0].attempt_id}: cancelled by the test"
    )


@pytest.mark.parametrize(
    ("stop", "status"), [({"cancel_after": 0.05}, "Cancelled"), ({"deadline": 0.05}, "Failed")]
)
async def test_a_skill_ignoring_the_stop_is_cancelled_after_the_grace(
    env: SkillEnvironment, calls: list[str], stop, status
):
    outcome = await env.run("stubborn", {}, **stop)
    assert outcome.status == status, outcome
    saw, cancelled = (float(c.split()[1]) for c in calls)
    assert 0.25 <= cancelled - saw < 2


async def test_cancel_while_in_flight(env: SkillEnvironment, calls: list[str]):
    with pytest.raises(RuntimeError, match="no run in flight"):
        env.cancel()
    run = asyncio.create_task(env.run("waits", {"raise": True}))
    while "waits" not in calls:
        await asyncio.sleep(0.01)
    env.cancel("deleted")
    outcome = await asyncio.wait_for(run, 3)
    assert outcome.cancelled and outcome.error is not None and outcome.error.message == "deleted"
    assert "stopping attempt test-job-1-" in outcome.messages[0]  # logged in the run's context


def test_cancel_from_another_thread_stops_a_sync_skill(env: SkillEnvironment):
    timer = threading.Timer(0.1, env.cancel, ("from a thread",))
    timer.start()
    outcome = env.run_sync("polls", {}, deadline=5)  # a broken cancel times out
    timer.join()
    assert outcome.cancelled and outcome.error is not None
    assert outcome.error.message == "from a thread"


async def test_a_deadline_in_seconds_stops_the_skill_as_timed_out(env: SkillEnvironment):
    started = time.monotonic()
    outcome = await env.run("waits", {"raise": True}, deadline=0.1)
    assert time.monotonic() - started < 2
    assert outcome.failed and outcome.error is not None
    assert (outcome.error.error_type, outcome.error.retryable) == ("TimedOut", True)
    assert outcome.error.message.startswith("the attempt passed its deadline ")


async def test_the_skill_sees_its_deadline(env: SkillEnvironment):
    deadline = datetime.now(UTC) + timedelta(seconds=0.2)
    outcome = await env.run("waits", {}, deadline=deadline)
    assert outcome.succeeded  # returned when told to stop: its result is kept
    assert outcome.result["reason"] == f"the attempt passed its deadline {deadline.isoformat()}"
    assert -1 < outcome.result["left"] <= 0


async def test_a_deadline_already_past_never_starts_the_skill(
    env: SkillEnvironment, calls: list[str]
):
    outcome = await env.run("waits", {}, deadline=datetime.now(UTC) - timedelta(seconds=1))
    assert outcome.error is not None and outcome.error.error_type == "TimedOut"
    assert calls == []


async def test_logs_carry_the_ids_and_runs_do_not_mix(env: SkillEnvironment):
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    first, second = await asyncio.gather(
        env.run("thumb", {"url": "a", "width": 1}, job="one"),
        env.run("thumb", {"url": "b", "width": 2}, job="two", namespace="ns", attempt=3),
    )
    assert (root.level, root.handlers) == (level, handlers)  # restored
    assert not [h for h in root.handlers if type(h).__module__ == "worker_runtime.testing"]
    assert first.messages == ["fetched a", "module logger, job one attempt 1", "succeeded"]
    assert second.messages == ["fetched b", "module logger, job two attempt 3", "succeeded"]
    for outcome, job in ((first, "default/one"), (second, "ns/two")):
        ids = {(r.worker_id, r.job, r.attempt_id) for r in outcome.logs}  # type: ignore[attr-defined]
        assert len(ids) == 1
        worker_id, got_job, attempt_id = ids.pop()
        assert (worker_id, got_job) == ("test-worker", job) and attempt_id.startswith(job[-3:])


async def test_log_level_leaves_out_lower_records(calls: list[str]):
    env = SkillEnvironment(make_worker(calls), log_level=logging.WARNING)
    outcome = await env.run("thumb", {"url": "a", "width": 1})
    assert outcome.messages == ["module logger, job test-job attempt 1"]


async def test_log_level_holds_whatever_level_the_root_logger_has(calls: list[str]):
    """Other code (an earlier test, the app) may have lowered the root logger: the run's
    level still leaves out the lower records (a sequential `make unit` failed on this)."""
    root = logging.getLogger()
    saved = root.level
    root.setLevel(logging.DEBUG)
    try:
        env = SkillEnvironment(make_worker(calls), log_level=logging.WARNING)
        outcome = await env.run("thumb", {"url": "a", "width": 1})
    finally:
        root.setLevel(saved)
    assert outcome.messages == ["module logger, job test-job attempt 1"]


async def test_the_context_names_the_job(env: SkillEnvironment):
    outcome = await env.run("about", job="nightly", namespace="etl", attempt=2)
    assert outcome.result == {"job": ["etl", "nightly"], "attempt": 2}


async def test_an_unknown_skill_is_a_test_error(env: SkillEnvironment):
    with pytest.raises(LookupError, match=r"no skill 'thumbs'.*about, fail"):
        await env.run("thumbs", {})
