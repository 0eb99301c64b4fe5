"""The Dispatcher (``shiftboss.jobs.dispatcher``) against an in-memory JobStore: claims,
reports, leases and timers on a calm API server (see ``dispatching`` for the helpers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from dispatching import (
    claim_one,
    commands,
    end_grace,
    expire,
    parse_ts,
    running_status,
    settle,
    submit,
    tick,
    ticking,
    ts,
    worker,
)
from fake_store import (
    NAMESPACE,
    POOL,
    at,
)

from shiftboss.api.jobstatus import WaitReason
from shiftboss.jobs.dispatcher import (
    AttemptNotCurrent,
    ResultTooLarge,
    UnknownAttempt,
)
from shiftboss.jobs.events import Blocked
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.kube.flow import Priority
from worker_runtime.protocol import (
    MAX_INLINE_RESULT_BYTES,
    Assignment,
    FailReport,
    JobRef,
    ProgressReport,
)

SCHEMA_N = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
}

# -- claims: who gets what ----------------------------------------------------------------


async def test_claims_honour_priority_then_age(store, dispatcher):
    submit(store, dispatcher, "new-high", priority=9, created=at(20))
    submit(store, dispatcher, "old-low", priority=1, created=at(0))
    submit(store, dispatcher, "newest-mid", created=at(30))
    submit(store, dispatcher, "old-high", priority=9, created=at(10))
    submit(store, dispatcher, "mid", created=at(5))
    w = worker()

    order = [(await claim_one(dispatcher, w)).job.name for _ in range(5)]

    assert order == ["old-high", "new-high", "mid", "newest-mid", "old-low"]
    assert await dispatcher.claim(w, 1, 0) == []


async def test_jobs_created_in_the_same_second_go_in_the_order_they_were_seen(store, dispatcher):
    # creationTimestamp has a one-second resolution; uids sort opposite to arrival here.
    for name, uid in (("first", "uid-c"), ("second", "uid-b"), ("third", "uid-a")):
        submit(store, dispatcher, name, uid=uid, created=at(0))
    w = worker()

    order = [(await claim_one(dispatcher, w)).job.name for _ in range(3)]

    assert order == ["first", "second", "third"]


async def test_a_worker_only_gets_jobs_of_the_skills_it_registered(store, dispatcher):
    submit(store, dispatcher, "resize-old", skill="resize", created=at(0), priority=9)
    submit(store, dispatcher, "echo-1", created=at(1))
    submit(store, dispatcher, "echo-2", created=at(2))

    got = await dispatcher.claim(worker("w1", "echo"), 10, 0)

    assert [a.job.name for a in got] == ["echo-1", "echo-2"]
    assert store.phase("resize-old") is None
    assert dispatcher.queued_count(NAMESPACE, POOL) == 1
    resized = await dispatcher.claim(worker("w2", "resize", "echo"), 10, 0)
    assert [a.job.name for a in resized] == ["resize-old"]
    assert resized[0].skill == "resize"


async def test_a_paused_pool_gets_nothing(store, make_dispatcher):
    paused = {(NAMESPACE, POOL)}
    dispatcher = make_dispatcher(is_paused=lambda ns, pool: (ns, pool) in paused)
    submit(store, dispatcher, "a")
    submit(store, dispatcher, "elsewhere", pool="other")

    assert await dispatcher.claim(worker("w1"), 5, 0) == []
    assert store.status_writes == 0
    assert dispatcher.queued_count(NAMESPACE, POOL) == 1
    # Another pool is not affected.
    other = await dispatcher.claim(worker("w9", pool="other"), 5, 0)
    assert [a.job.name for a in other] == ["elsewhere"]

    paused.clear()
    assert [a.job.name for a in await dispatcher.claim(worker("w1"), 5, 0)] == ["a"]


async def test_resuming_a_paused_pool_wakes_its_waiting_claims(store, make_dispatcher):
    paused = {(NAMESPACE, POOL)}
    dispatcher = make_dispatcher(is_paused=lambda ns, pool: (ns, pool) in paused)
    submit(store, dispatcher, "a")
    waiting = asyncio.create_task(dispatcher.claim(worker(), 1, 30))
    await asyncio.sleep(0.01)
    assert not waiting.done()

    paused.clear()
    dispatcher.wake(NAMESPACE, POOL)

    got = await asyncio.wait_for(waiting, 0.5)
    assert [a.job.name for a in got] == ["a"]


async def test_max_attempts_hands_out_several_jobs(store, dispatcher):
    for i in range(3):
        submit(store, dispatcher, f"j{i}", created=at(i))
    w = worker()

    first = await dispatcher.claim(w, 2, 0)

    assert [a.job.name for a in first] == ["j0", "j1"]
    assert [a.attempt_id for a in first] == ["uid-j0.1", "uid-j1.1"]
    assert [store.status(n)["worker"] for n in ("j0", "j1")] == ["w1", "w1"]
    assert store.phase("j2") is None
    assert [a.job.name for a in await dispatcher.claim(w, 5, 0)] == ["j2"]
    assert await dispatcher.claim(w, 5, 0) == []
    assert dispatcher.running_count(NAMESPACE, POOL) == 3
    assert dispatcher.busy_workers(NAMESPACE) == {"w1"}


async def test_a_draining_worker_gets_nothing(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()
    w.draining = True

    assert await dispatcher.claim(w, 1, 30) == []  # and at once: no long poll
    assert store.status_writes == 0


# -- claims: long polls -------------------------------------------------------------------


async def test_long_poll_with_nothing_queued_returns_empty_after_wait(dispatcher):
    started = time.monotonic()

    got = await dispatcher.claim(worker(), 1, 0.05)

    assert got == []
    assert time.monotonic() - started >= 0.04


async def test_long_poll_returns_promptly_when_a_job_is_observed(store, dispatcher):
    w = worker("w1", "echo")
    waiting = asyncio.create_task(dispatcher.claim(w, 1, 30))
    await asyncio.sleep(0.01)
    assert not waiting.done()

    # A job this worker cannot run wakes the poll, which goes back to waiting.
    submit(store, dispatcher, "not-mine", skill="resize")
    await asyncio.sleep(0.01)
    assert not waiting.done()
    # A job of another pool does not end it either.
    submit(store, dispatcher, "other-pool", pool="other")
    await asyncio.sleep(0.01)
    assert not waiting.done()

    submit(store, dispatcher, "mine")
    got = await asyncio.wait_for(waiting, 0.5)

    assert [a.job.name for a in got] == ["mine"]
    assert store.phase("mine") == "Running"


async def test_close_answers_waiting_claims_at_once(store, dispatcher):
    polls = [asyncio.create_task(dispatcher.claim(worker(f"w{i}"), 1, 30)) for i in range(2)]
    await asyncio.sleep(0.01)
    assert not any(p.done() for p in polls)

    dispatcher.close()

    assert await asyncio.wait_for(asyncio.gather(*polls), 0.5) == [[], []]
    # A later claim does not wait either.
    assert await asyncio.wait_for(dispatcher.claim(worker("w3"), 1, 30), 0.5) == []


# -- claims: writes and concurrency -------------------------------------------------------


async def test_the_claim_is_written_before_the_assignment_is_returned(store, dispatcher, clock):
    submit(store, dispatcher, "a", params={"n": 1})
    w = worker()

    got = await dispatcher.claim(w, 1, 0)

    # Nothing ran between the return and these checks: the write came first.
    status = store.status("a")
    assert status["phase"] == "Running"
    assert status["worker"] == "w1"
    assert status["attempt"] == 1
    assert status["attemptStartTime"] == ts(clock.now)
    assert status["startTime"] == ts(clock.now)
    assert store.status_writes == 1
    assert got == [
        Assignment(
            attempt_id="uid-a.1",
            job=JobRef(namespace=NAMESPACE, name="a", uid="uid-a"),
            attempt=1,
            skill="echo",
            params={"n": 1},
            deadline=None,
            lease_seconds=15.0,
        )
    ]
    assert dispatcher.lease_holder(NAMESPACE, "uid-a.1") == "w1"


async def test_two_concurrent_claims_never_get_the_same_job(store, dispatcher):
    submit(store, dispatcher, "only")

    results = await asyncio.gather(
        dispatcher.claim(worker("w1"), 1, 0), dispatcher.claim(worker("w2"), 1, 0)
    )

    handed = [a for got in results for a in got]
    assert [a.job.name for a in handed] == ["only"]
    assert store.status_writes == 1
    assert store.status("only")["worker"] == dispatcher.lease_holder(NAMESPACE, "uid-only.1")


async def test_many_concurrent_claims_hand_out_each_job_once(store, dispatcher):
    for i in range(7):
        submit(store, dispatcher, f"j{i}", created=at(i), priority=i % 3)

    results = await asyncio.gather(*(dispatcher.claim(worker(f"w{i}"), 3, 0) for i in range(4)))

    handed = sorted(a.job.name for got in results for a in got)
    assert handed == [f"j{i}" for i in range(7)]
    assert store.status_writes == 7
    for got in results:
        for a in got:
            assert a.attempt == 1
            assert store.status(a.job.name)["worker"] == dispatcher.lease_holder(
                NAMESPACE, a.attempt_id
            )
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0


async def test_an_api_failure_during_a_claim_puts_the_job_back(store, dispatcher):
    submit(store, dispatcher, "a")
    store.write_errors.append(RuntimeError("API server unavailable"))
    w = worker()

    with pytest.raises(RuntimeError, match="unavailable"):
        await dispatcher.claim(w, 1, 0)

    assert store.phase("a") is None
    assert store.status_writes == 0
    assert "uid-a.1" not in dispatcher.leases
    assert dispatcher.queued_count(NAMESPACE, POOL) == 1
    got = await claim_one(dispatcher, w)
    assert (got.job.name, got.attempt) == ("a", 1)
    assert store.phase("a") == "Running"


async def test_a_claim_conflicting_with_another_writer_rereads_and_keeps_the_job(store, dispatcher):
    submit(store, dispatcher, "a")
    store.modify("a", lambda o: o["metadata"].setdefault("labels", {}).update(team="x"))
    w = worker()

    first = await dispatcher.claim(w, 1, 0)

    assert store.reads == 1  # the 409 made it re-read the Job
    assert first == [] or [a.job.name for a in first] == ["a"]
    if not first:
        first = await dispatcher.claim(w, 1, 0)
    assert [a.job.name for a in first] == ["a"]
    assert store.phase("a") == "Running"
    assert store.status_writes == 1


async def test_a_long_poll_that_hits_a_conflict_still_takes_the_job_promptly(store, dispatcher):
    submit(store, dispatcher, "a")
    store.modify("a", lambda o: o["metadata"].setdefault("labels", {}).update(team="x"))

    got = await asyncio.wait_for(dispatcher.claim(worker(), 1, 10), 0.1)

    assert [a.job.name for a in got] == ["a"]


async def test_an_api_failure_mid_batch_does_not_lose_the_claims_already_written(store, dispatcher):
    submit(store, dispatcher, "a", created=at(0))
    submit(store, dispatcher, "b", created=at(1))
    # The two claims are written side by side; "b"'s fails, and fails again when retried.
    store.write_errors += [None, RuntimeError("unavailable"), RuntimeError("unavailable")]

    got = await dispatcher.claim(worker(), 2, 0)

    assert [a.job.name for a in got] == ["a"]  # what was written is handed over
    assert store.phase("a") == "Running"
    assert dispatcher.queued_count(NAMESPACE, POOL) == 1  # "b" is back in the queue
    assert store.write_errors == []


async def test_a_claim_that_fails_whole_raises_and_loses_nothing(store, dispatcher):
    submit(store, dispatcher, "a")
    store.write_errors.append(RuntimeError("unavailable"))

    with pytest.raises(RuntimeError):
        await dispatcher.claim(worker(), 2, 0)

    assert store.status_writes == 0
    assert dispatcher.queued_count(NAMESPACE, POOL) == 1
    assert [a.job.name for a in await dispatcher.claim(worker(), 2, 0)] == ["a"]


# -- params -------------------------------------------------------------------------------


async def test_params_breaking_the_schema_fail_the_job_and_the_next_valid_job_is_claimed(
    store, dispatcher, events
):
    submit(store, dispatcher, "bad-type", params={"n": "seven"}, priority=9, created=at(0))
    submit(store, dispatcher, "bad-missing", params={}, priority=9, created=at(1))
    submit(store, dispatcher, "good", params={"n": 3}, priority=1, created=at(2))
    w = worker("w1", "echo", schemas={"echo": SCHEMA_N})

    got = await dispatcher.claim(w, 1, 0)

    assert [a.job.name for a in got] == ["good"]
    for name in ("bad-type", "bad-missing"):
        status = store.status(name)
        assert status["phase"] == "Failed"
        assert status["error"]["type"] == "InvalidParams"
        assert status["error"]["retryable"] is False
        assert status["attempt"] == 0
        assert store.phases_written(name) == ["Failed"]
        assert "uid-" + name not in {lease.uid for lease in list(dispatcher.leases)}
    assert "spec.params.n" in store.status("bad-type")["error"]["message"]
    assert '"n" is a required property' in store.status("bad-missing")["error"]["message"]
    assert sorted(e["name"] for e in events.recorded if e["reason"] == "InvalidParams") == [
        "bad-missing",
        "bad-type",
    ]
    assert all(e["warning"] for e in events.recorded)
    # Never handed out later either.
    assert await dispatcher.claim(w, 5, 0) == []
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0


# -- complete -----------------------------------------------------------------------------


async def test_complete_succeeds_with_the_result(store, dispatcher, events, clock):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    started = clock.now
    clock.advance(3)

    await dispatcher.complete(w, a.attempt_id, {"answer": 42})

    status = store.status("a")
    assert status["phase"] == "Succeeded"
    assert status["result"] == {"answer": 42}
    assert status["completionTime"] == ts(clock.now)
    assert status["duration"] == "3s"
    assert "error" not in status
    assert [{k: v for k, v in r.items() if v is not None} for r in status["attempts"]] == [
        {
            "attempt": 1,
            "worker": "w1",
            "startTime": ts(started),
            "endTime": ts(clock.now),
            "outcome": "Succeeded",
        }
    ]
    assert a.attempt_id not in dispatcher.leases
    assert dispatcher.running_count(NAMESPACE, POOL) == 0
    assert events.recorded == []  # a success costs no Event


async def test_a_second_complete_is_not_current(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.complete(w, a.attempt_id, "first")
    writes = store.status_writes

    with pytest.raises(AttemptNotCurrent):
        await dispatcher.complete(w, a.attempt_id, "second")
    with pytest.raises(AttemptNotCurrent):
        await dispatcher.fail(w, a.attempt_id, FailReport(error_type="Late"))

    assert store.status("a")["result"] == "first"
    assert store.status_writes == writes


async def test_two_concurrent_reports_of_one_attempt_do_not_interleave(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)

    replies = await asyncio.gather(
        dispatcher.complete(w, a.attempt_id, "first"),
        dispatcher.fail(w, a.attempt_id, FailReport(error_type="E")),
        return_exceptions=True,
    )

    assert replies[0] is None
    assert isinstance(replies[1], AttemptNotCurrent)
    assert store.phases_written("a") == ["Running", "Succeeded"]
    assert store.conflicts == 0  # the second waited for the first instead of racing it


async def test_complete_by_another_worker_is_not_current(store, dispatcher):
    submit(store, dispatcher, "a")
    w1, w2 = worker("w1"), worker("w2")
    a = await claim_one(dispatcher, w1)

    with pytest.raises(AttemptNotCurrent):
        await dispatcher.complete(w2, a.attempt_id, "stolen")
    with pytest.raises(UnknownAttempt) as refused:  # nothing named outside its namespace
        await dispatcher.complete(worker("w1", namespace="elsewhere"), a.attempt_id, "x")
    assert str(refused.value) == "no job in namespace elsewhere has attempt 'uid-a.1'"

    assert store.phase("a") == "Running"
    await dispatcher.complete(w1, a.attempt_id, "mine")
    assert store.status("a")["result"] == "mine"


@pytest.mark.parametrize("key", ["garbage", "uid-a.x", "uid-a.", ".1", "uid-nobody.1"])
async def test_malformed_or_unknown_attempt_ids_are_unknown(store, dispatcher, key):
    submit(store, dispatcher, "a")
    w = worker()
    await claim_one(dispatcher, w)

    with pytest.raises(UnknownAttempt):
        await dispatcher.complete(w, key, "x")
    with pytest.raises(UnknownAttempt):
        await dispatcher.fail(w, key, FailReport(error_type="E"))
    with pytest.raises(UnknownAttempt):
        dispatcher.lease_holder(NAMESPACE, key)

    assert store.phase("a") == "Running"


async def test_a_wrong_attempt_number_is_not_current(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()
    await claim_one(dispatcher, w)

    with pytest.raises(AttemptNotCurrent):
        await dispatcher.complete(w, "uid-a.2", "x")
    assert store.phase("a") == "Running"


async def test_a_result_over_the_inline_limit_fails_the_job(store, dispatcher, events):
    submit(store, dispatcher, "a")  # three attempts allowed: the failure is still final
    w = worker()
    a = await claim_one(dispatcher, w)
    result = {"blob": "x" * MAX_INLINE_RESULT_BYTES}

    with pytest.raises(ResultTooLarge, match="artifacts"):
        await dispatcher.complete(w, a.attempt_id, result)

    status = store.status("a")
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "ResultTooLarge"
    assert status["error"]["retryable"] is False
    assert "result" not in status
    assert status["attempts"][-1]["outcome"] == "Failed"
    assert status["attempts"][-1]["errorType"] == "ResultTooLarge"
    assert events.reasons("a") == ["Failed"]
    with pytest.raises(AttemptNotCurrent):
        await dispatcher.complete(w, a.attempt_id, "small")


async def test_a_result_exactly_at_the_inline_limit_is_stored(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    result = "x" * (MAX_INLINE_RESULT_BYTES - 2)  # with its quotes: exactly the limit

    await dispatcher.complete(w, a.attempt_id, result)

    assert store.status("a")["result"] == result


async def test_the_result_limit_counts_bytes_of_non_ascii_text(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    result = "é" * 6000  # 12,002 bytes of JSON in UTF-8, well under the limit

    await dispatcher.complete(w, a.attempt_id, result)

    assert store.status("a")["result"] == result


# -- fail and retry -----------------------------------------------------------------------


async def test_a_retryable_failure_retries_after_next_attempt_at(store, dispatcher, events, clock):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)

    await dispatcher.fail(
        w, a.attempt_id, FailReport(error_type="ValueError", message="boom", retryable=True)
    )

    status = store.status("a")
    assert status["phase"] == "Retrying"
    assert "worker" not in status
    next_at = parse_ts(status["nextAttemptAt"])
    # The default backoff: 1 s before the second attempt, +/-10 % jitter.
    assert at(60.9) <= next_at <= at(61.1)
    assert status["attempts"][-1]["outcome"] == "Failed"
    assert status["attempts"][-1]["errorType"] == "ValueError"
    assert events.reasons("a") == ["Retrying"]
    assert dispatcher.queued_count(NAMESPACE, POOL) == 1  # waiting for its retry

    # Not before nextAttemptAt.
    assert await dispatcher.claim(w, 1, 0) == []
    clock.advance(0.5)
    await tick(dispatcher)
    assert await dispatcher.claim(w, 1, 0) == []

    clock.now = next_at
    await tick(dispatcher)
    again = await claim_one(dispatcher, worker("w2"))
    assert (again.attempt, again.attempt_id) == (2, "uid-a.2")
    status = store.status("a")
    assert (status["phase"], status["attempt"], status["worker"]) == ("Running", 2, "w2")
    assert "nextAttemptAt" not in status
    # The old attempt is over for good.
    with pytest.raises(AttemptNotCurrent):
        await dispatcher.complete(w, a.attempt_id, "late")
    await dispatcher.complete(worker("w2"), again.attempt_id, "done")
    assert [r["outcome"] for r in store.status("a")["attempts"]] == ["Failed", "Succeeded"]


async def test_a_non_retryable_failure_fails_the_job(store, dispatcher, events):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)

    await dispatcher.fail(w, a.attempt_id, FailReport(error_type="FatalError", retryable=False))

    status = store.status("a")
    assert status["phase"] == "Failed"
    assert status["error"] == {"type": "FatalError", "message": "", "retryable": False}
    assert events.reasons("a") == ["Failed"]
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0


async def test_a_retry_waiting_past_the_active_deadline_fails_the_job(store, dispatcher, clock):
    submit(store, dispatcher, "a", activeDeadlineSeconds=5)
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.fail(w, a.attempt_id, FailReport(error_type="E", retry_after_seconds=60))
    assert store.phase("a") == "Retrying"

    clock.advance(5)
    await tick(dispatcher)

    status = store.status("a")
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "DeadlineExceeded"
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0


# -- leases -------------------------------------------------------------------------------


async def test_lease_expiry_retries_the_job(store, dispatcher, events):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    await tick(dispatcher)
    assert store.phase("a") == "Running"  # a live lease is left alone

    expire(dispatcher, a.attempt_id)
    await tick(dispatcher)

    status = store.status("a")
    assert status["phase"] == "Retrying"
    assert status["nextAttemptAt"]
    [record] = status["attempts"]
    assert (record["attempt"], record["worker"], record["outcome"], record["errorType"]) == (
        1,
        "w1",
        "LeaseExpired",
        "LeaseExpired",
    )
    assert events.reasons("a") == ["Retrying"]
    with pytest.raises(AttemptNotCurrent):
        await dispatcher.complete(w, a.attempt_id, "late")
    with pytest.raises(AttemptNotCurrent):
        await dispatcher.fail(w, a.attempt_id, FailReport(error_type="Late"))
    assert commands(dispatcher, w, a.attempt_id) == [("abandon", a.attempt_id)]
    assert store.phases_written("a") == ["Running", "Retrying"]


async def test_lease_expiry_at_max_attempts_fails_the_job_once(store, dispatcher, events):
    submit(store, dispatcher, "a", retry={"maxAttempts": 1})
    w = worker()
    a = await claim_one(dispatcher, w)

    expire(dispatcher, a.attempt_id)
    await tick(dispatcher)
    with pytest.raises(AttemptNotCurrent):
        await dispatcher.complete(w, a.attempt_id, "late")
    await tick(dispatcher)

    status = store.status("a")
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "LeaseExpired"
    assert status["attempts"][-1]["outcome"] == "LeaseExpired"
    assert "result" not in status
    assert store.phases_written("a") == ["Running", "Failed"]
    assert events.reasons("a") == ["Failed"]


async def test_an_attempt_past_its_timeout_is_timed_out(store, dispatcher, clock):
    submit(store, dispatcher, "a", timeoutSeconds=10)
    w = worker()
    a = await claim_one(dispatcher, w)
    assert a.deadline == at(70)
    clock.advance(9)
    assert commands(dispatcher, w, a.attempt_id) == []  # heartbeats do not extend a timeout
    await tick(dispatcher)
    assert store.phase("a") == "Running"

    clock.advance(1)
    await tick(dispatcher)
    # The worker is told to stop first, with a grace; the attempt is still its own.
    assert store.phase("a") == "Running"
    assert commands(dispatcher, w, a.attempt_id) == [("cancel", a.attempt_id)]

    end_grace(dispatcher, a.attempt_id)  # it never reported: fenced
    await tick(dispatcher)

    status = store.status("a")
    assert status["phase"] == "Retrying"
    assert status["attempts"][-1]["outcome"] == "TimedOut"
    assert commands(dispatcher, w, a.attempt_id) == [("abandon", a.attempt_id)]


@pytest.mark.parametrize("report", ["fail", "release"])
async def test_a_timed_out_attempt_that_stops_in_its_grace_is_recorded_as_timed_out(
    store, dispatcher, clock, report
):
    submit(store, dispatcher, "a", timeoutSeconds=10)
    w = worker()
    a = await claim_one(dispatcher, w)
    clock.advance(10)
    await tick(dispatcher)
    assert commands(dispatcher, w, a.attempt_id) == [("cancel", a.attempt_id)]

    if report == "fail":  # the runtime reports what it saw: a cancellation
        stopped = FailReport(error_type="Cancelled", message="stopped", retryable=False)
        await dispatcher.fail(w, a.attempt_id, stopped)
    else:
        await dispatcher.release(w, a.attempt_id, "shutting down")

    status = store.status("a")
    assert status["phase"] == "Retrying"  # the operator's reason, not the worker's words
    assert (status["attempts"][-1]["outcome"], status["countedAttempts"]) == ("TimedOut", 1)


async def test_a_completion_in_the_grace_of_a_timeout_wins(store, dispatcher, clock):
    submit(store, dispatcher, "a", timeoutSeconds=10)
    w = worker()
    a = await claim_one(dispatcher, w)
    clock.advance(11)
    await tick(dispatcher)
    assert dispatcher.leases[a.attempt_id].stop is not None

    await dispatcher.complete(w, a.attempt_id, {"done": True})

    assert store.phase("a") == "Succeeded"
    assert store.status("a")["result"] == {"done": True}


@pytest.mark.parametrize("max_attempts", [1, 3])
@pytest.mark.parametrize("complete_first", [True, False], ids=["complete-first", "tick-first"])
async def test_a_complete_racing_a_lease_expiry_has_exactly_one_outcome(
    store, dispatcher, complete_first, max_attempts
):
    submit(store, dispatcher, "a", retry={"maxAttempts": max_attempts})
    w = worker()
    a = await claim_one(dispatcher, w)
    expire(dispatcher, a.attempt_id)

    async def complete() -> str:
        try:
            await dispatcher.complete(w, a.attempt_id, {"ok": True})
        except AttemptNotCurrent:
            return "refused"
        return "completed"

    if complete_first:
        reply, _ = await asyncio.gather(complete(), ticking(dispatcher))
    else:
        dispatcher.tick()
        await asyncio.sleep(0)  # the expiry's write takes the job's lock
        reply = await complete()
    assert await settle(dispatcher) == []
    await tick(dispatcher)

    status = store.status("a")
    expired_phase = "Failed" if max_attempts == 1 else "Retrying"
    assert status["phase"] in ("Succeeded", expired_phase)
    assert [r["attempt"] for r in status["attempts"]] == [1]
    assert store.phases_written("a") == ["Running", status["phase"]]
    if status["phase"] == "Succeeded":
        assert reply == "completed"
        assert status["attempts"][0]["outcome"] == "Succeeded"
        assert status["result"] == {"ok": True}
    else:
        assert reply == "refused"
        assert status["attempts"][0]["outcome"] == "LeaseExpired"
        assert "result" not in status
    assert a.attempt_id not in dispatcher.leases
    # The report that got in first wins.
    assert status["phase"] == ("Succeeded" if complete_first else expired_phase)


async def test_a_late_lease_expiry_never_ends_a_newer_attempt(store, dispatcher, clock):
    submit(store, dispatcher, "a")
    a = await claim_one(dispatcher, worker("w1"))
    expire(dispatcher, a.attempt_id)
    dispatcher.tick()  # the expiry of attempt 1 is spawned, not yet run

    # Meanwhile the watch shows attempt 2 running on w2 (written by another operator).
    def second_attempt(obj: dict) -> None:
        obj["status"].update(attempt=2, worker="w2", attemptStartTime=ts(clock.now))

    dispatcher.observe(store.modify("a", second_attempt))
    assert await settle(dispatcher) == []

    status = store.status("a")
    assert (status["phase"], status["attempt"], status["worker"]) == ("Running", 2, "w2")
    assert dispatcher.lease_holder(NAMESPACE, "uid-a.2") == "w2"


async def test_heartbeat_renews_the_leases_it_names(store, dispatcher):
    submit(store, dispatcher, "a", created=at(0))
    submit(store, dispatcher, "b", created=at(1))
    w = worker()
    a, b = await dispatcher.claim(w, 2, 0)
    expire(dispatcher, a.attempt_id)
    expire(dispatcher, b.attempt_id)

    assert commands(dispatcher, w, a.attempt_id) == []

    assert dispatcher.leases[a.attempt_id].expires > dispatcher.book.monotonic() + 14
    await tick(dispatcher)
    assert store.phase("a") == "Running"
    assert store.status("b")["attempts"][-1]["outcome"] == "LeaseExpired"  # not named


async def test_heartbeat_answers_unknown_attempts_with_abandon(store, dispatcher):
    submit(store, dispatcher, "a")
    w1, w2 = worker("w1"), worker("w2")
    a = await claim_one(dispatcher, w1)
    expire(dispatcher, a.attempt_id)
    unknown = ["uid-nobody.1", "garbage", "uid-a.2"]

    assert commands(dispatcher, w1, a.attempt_id, *unknown) == [("abandon", key) for key in unknown]
    # Another worker naming w1's attempt neither gets it nor renews its lease.
    expire(dispatcher, a.attempt_id)
    assert commands(dispatcher, w2, a.attempt_id) == [("abandon", a.attempt_id)]
    await tick(dispatcher)
    assert store.phase("a") == "Retrying"


@pytest.mark.parametrize("stops", ["in-its-grace", "never"])
async def test_a_cancelled_running_attempt_is_told_to_stop_then_fenced(
    store, dispatcher, events, stops
):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    dispatcher.observe(store.modify("a", lambda o: o["spec"].update(cancel=True)))
    await tick(dispatcher)

    # Not ended at once: the worker hears "cancel" with a grace, the lease is still its own.
    [command] = dispatcher.heartbeat(w, [a.attempt_id], False)
    assert (command.type, command.attempt_id, command.grace_seconds) == (
        "cancel",
        a.attempt_id,
        5.0,
    )
    assert "cancelled" in command.reason
    assert store.phase("a") == "Running"

    if stops == "in-its-grace":
        stopped = FailReport(error_type="Cancelled", message="stopped", retryable=False)
        await dispatcher.fail(w, a.attempt_id, stopped)
    else:
        end_grace(dispatcher, a.attempt_id)
        await tick(dispatcher)

    status = store.status("a")
    assert status["phase"] == "Cancelled"
    assert status["attempts"][-1]["outcome"] == "Cancelled"
    assert store.phases_written("a") == ["Running", "Cancelled"]
    assert events.reasons("a") == ["Cancelled"]
    # Once the cancellation is written the attempt is simply over.
    assert commands(dispatcher, w, a.attempt_id) == [("abandon", a.attempt_id)]
    with pytest.raises(AttemptNotCurrent):
        await dispatcher.complete(w, a.attempt_id, "late")
    assert store.phase("a") == "Cancelled"


async def test_heartbeat_records_draining(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()

    assert dispatcher.heartbeat(w, [], True) == []

    assert w.draining
    assert await dispatcher.claim(w, 1, 0) == []
    dispatcher.heartbeat(w, [], False)
    assert [x.job.name for x in await dispatcher.claim(w, 1, 0)] == ["a"]


async def test_worker_gone_expires_its_leases_at_the_next_tick(store, dispatcher):
    submit(store, dispatcher, "a", created=at(0))
    submit(store, dispatcher, "b", created=at(1))
    w1, w2 = worker("w1"), worker("w2")
    a = await claim_one(dispatcher, w1)
    b = await claim_one(dispatcher, w2)

    dispatcher.worker_gone(NAMESPACE, "w1")
    assert store.phase("a") == "Running"  # nothing is written until the timers run
    await tick(dispatcher)

    assert store.status("a")["attempts"][-1]["outcome"] == "LeaseExpired"
    assert store.phase("a") == "Retrying"
    assert store.phase("b") == "Running"
    assert a.attempt_id not in dispatcher.leases
    assert b.attempt_id in dispatcher.leases
    assert dispatcher.busy_workers(NAMESPACE) == {"w2"}


async def test_worker_gone_in_another_namespace_changes_nothing(store, dispatcher):
    submit(store, dispatcher, "a")
    a = await claim_one(dispatcher, worker("w1"))

    dispatcher.worker_gone("elsewhere", "w1")
    await tick(dispatcher)

    assert store.phase("a") == "Running"
    assert a.attempt_id in dispatcher.leases


# -- another writer: cancel ---------------------------------------------------------------


async def test_a_cancel_before_the_claim_is_never_handed_out(store, dispatcher):
    submit(store, dispatcher, "a")
    store.modify("a", lambda o: o["spec"].update(cancel=True))  # not yet seen by the watch

    assert await dispatcher.claim(worker(), 1, 0) == []  # the claim's write met a 409
    await tick(dispatcher)

    assert store.phase("a") == "Cancelled"
    assert store.phases_written("a") == ["Cancelled"]
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0


async def test_a_queued_job_cancelled_by_the_watch_is_dropped(store, dispatcher):
    submit(store, dispatcher, "a")

    dispatcher.observe(store.modify("a", lambda o: o["spec"].update(cancel=True)))

    assert await dispatcher.claim(worker(), 1, 0) == []
    await tick(dispatcher)
    assert store.phase("a") == "Cancelled"
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0


@pytest.mark.parametrize("seen_by", ["reread-after-409", "watch", "timers"])
async def test_a_complete_racing_a_cancel_wins(store, dispatcher, seen_by):
    """Finished work is never thrown away: a completion that reaches the operator before
    the cancellation is written (fenced) wins."""
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)

    cancelled = store.modify("a", lambda o: o["spec"].update(cancel=True))
    if seen_by in ("watch", "timers"):
        dispatcher.observe(cancelled)
    if seen_by == "timers":
        await tick(dispatcher)
        assert dispatcher.leases[a.attempt_id].stop is not None
    await dispatcher.complete(w, a.attempt_id, {"done": True})
    await tick(dispatcher)

    if seen_by == "reread-after-409":
        assert store.reads >= 1
    assert store.phases_written("a") == ["Running", "Succeeded"]
    assert store.status("a")["result"] == {"done": True}


# -- another writer: deleted, restarted, stale --------------------------------------------


async def test_a_job_deleted_during_a_complete_is_not_current(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    store.remove("a")  # the watch has not said so yet

    with pytest.raises(AttemptNotCurrent, match="deleted"):
        await dispatcher.complete(w, a.attempt_id, "x")

    assert "uid-a" not in dispatcher.jobs
    assert a.attempt_id not in dispatcher.leases


async def test_observe_ignores_stale_versions(store, dispatcher):
    pending = submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)

    written = dispatcher.jobs["uid-a"].resource_version

    dispatcher.observe(pending)  # a late watch event of the version before the claim

    assert dispatcher.jobs["uid-a"].resource_version == written
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0
    assert dispatcher.running_count(NAMESPACE, POOL) == 1
    assert await dispatcher.claim(worker("w2"), 1, 0) == []
    dispatcher.observe(store.get("a"))  # the version the dispatcher wrote: nothing new
    assert dispatcher.jobs["uid-a"].resource_version == written
    await dispatcher.complete(w, a.attempt_id, "ok")
    assert store.phase("a") == "Succeeded"
    assert store.status_writes == 2


async def test_a_queued_job_finished_by_another_writer_leaves_the_queue(store, dispatcher):
    submit(store, dispatcher, "a")

    def finished_elsewhere(obj: dict) -> None:
        obj["status"] = {"phase": "Cancelled", "attempt": 0, "completionTime": ts(at(30))}

    dispatcher.observe(store.modify("a", finished_elsewhere))

    assert dispatcher.queued_count(NAMESPACE, POOL) == 0
    assert await dispatcher.claim(worker(), 1, 0) == []
    await tick(dispatcher)
    assert store.status_writes == 0


async def test_observe_takes_newer_versions(store, dispatcher):
    submit(store, dispatcher, "low", priority=1, created=at(0))
    submit(store, dispatcher, "other", priority=5, created=at(1))

    dispatcher.observe(store.modify("low", lambda o: o["spec"].update(priority=9)))

    assert (await claim_one(dispatcher, worker())).job.name == "low"


async def test_observe_deleted_forgets_the_job(store, dispatcher):
    submit(store, dispatcher, "running", priority=9)
    submit(store, dispatcher, "queued", priority=1)
    w = worker()
    a = await claim_one(dispatcher, w)
    assert a.job.name == "running"

    dispatcher.observe(store.remove("running"), deleted=True)
    dispatcher.observe(store.remove("queued"), deleted=True)

    assert dispatcher.jobs == {}
    assert len(dispatcher.leases) == 0
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0
    assert dispatcher.running_count(NAMESPACE, POOL) == 0
    assert await dispatcher.claim(w, 5, 0) == []
    assert commands(dispatcher, w, a.attempt_id) == [("abandon", a.attempt_id)]
    with pytest.raises(UnknownAttempt):
        await dispatcher.complete(w, a.attempt_id, "x")
    writes = store.status_writes
    await tick(dispatcher)
    assert store.status_writes == writes


async def test_a_running_job_observed_after_a_restart_gets_a_lease(store, dispatcher, clock):
    obj = store.create("a", status=running_status(2, "w1", started=at(50)))
    dispatcher.observe(obj)
    key = "uid-a.2"
    w1, w2 = worker("w1"), worker("w2")

    lease = dispatcher.leases[key]
    assert (lease.uid, lease.attempt, lease.worker_id, lease.namespace) == (
        "uid-a",
        2,
        "w1",
        NAMESPACE,
    )
    assert lease.expires > dispatcher.book.monotonic() + 14
    assert dispatcher.lease_holder(NAMESPACE, key) == "w1"
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0
    assert await dispatcher.claim(w2, 1, 0) == []
    assert commands(dispatcher, w1, key) == []
    with pytest.raises(AttemptNotCurrent):
        await dispatcher.complete(w2, key, "stolen")

    await dispatcher.complete(w1, key, "done")

    status = store.status("a")
    assert status["phase"] == "Succeeded"
    assert [(r["attempt"], r["outcome"]) for r in status["attempts"]] == [
        (1, "Failed"),
        (2, "Succeeded"),
    ]


async def test_after_a_hand_over_a_workers_claim_gets_its_orphaned_attempt_first(store, dispatcher):
    # The old leader wrote the claim of "a" for w1 and died before answering it; w1 then
    # claims from the new leader with one free slot while "b" waits in the queue.
    dispatcher.observe(store.create("a", status=running_status(1, "w1", started=at(50))))
    submit(store, dispatcher, "b")
    w1 = worker("w1")

    got = await claim_one(dispatcher, w1)
    assert (got.job.name, got.attempt_id) == ("a", "uid-a.1")  # not "b", which would fill
    # the slot and leave no room for "a" (the worker would hand it back: a second attempt)
    again = await claim_one(dispatcher, w1)
    assert again.job.name == "b"  # offered once; a heartbeat's assign covers a lost answer
    await dispatcher.complete(w1, got.attempt_id, "done")
    assert store.status("a")["attempt"] == 1


async def test_an_orphaned_attempt_is_never_offered_to_its_worker_id_in_another_pool(
    store, dispatcher
):
    # After a restart another pool's worker may register the same id first (a squat):
    # the restored lease names pool "pool", so that worker gets nothing of it.
    dispatcher.observe(store.create("a", status=running_status(1, "w1", started=at(50))))
    squatter = worker("w1", pool="other")
    assert await dispatcher.claim(squatter, 1, 0) == []
    got = await claim_one(dispatcher, worker("w1"))
    assert got.attempt_id == "uid-a.1"  # still there for the real one


async def test_an_attempt_its_worker_already_reported_is_not_offered_again(store, dispatcher):
    dispatcher.observe(store.create("a", status=running_status(1, "w1", started=at(50))))
    submit(store, dispatcher, "b")
    w1 = worker("w1")
    assert commands(dispatcher, w1, "uid-a.1") == []  # w1 runs it: its heartbeat says so
    got = await claim_one(dispatcher, w1)
    assert got.job.name == "b"


async def test_a_restarted_jobs_worker_that_never_returns_loses_its_lease(store, dispatcher):
    obj = store.create("a", retry={"maxAttempts": 2}, status=running_status(2, "w1", at(50)))
    dispatcher.observe(obj)

    expire(dispatcher, "uid-a.2")
    await tick(dispatcher)

    status = store.status("a")
    assert status["phase"] == "Failed"
    assert (status["attempts"][-1]["attempt"], status["attempts"][-1]["outcome"]) == (
        2,
        "LeaseExpired",
    )
    assert status["error"]["type"] == "LeaseExpired"


async def test_a_job_moved_out_of_running_by_another_writer_drops_the_lease(
    store, dispatcher, clock
):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)

    def retried_elsewhere(obj: dict) -> None:
        status = obj["status"]
        status.update(
            phase="Retrying",
            nextAttemptAt=ts(at(120)),
            attempts=[
                {"attempt": 1, "worker": "w1", "outcome": "LeaseExpired", "endTime": ts(at(60))}
            ],
        )
        status.pop("worker")

    dispatcher.observe(store.modify("a", retried_elsewhere))

    assert dispatcher.running_count(NAMESPACE, POOL) == 0
    assert commands(dispatcher, w, a.attempt_id) == [("abandon", a.attempt_id)]


# -- progress -----------------------------------------------------------------------------


async def test_progress_is_written_at_most_once_per_interval(store, dispatcher, clock):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)

    await dispatcher.progress(w, a.attempt_id, ProgressReport(percent=10))
    assert store.status_writes == 1  # the attempt's first interval: no write

    clock.advance(6)
    await dispatcher.progress(w, a.attempt_id, ProgressReport(percent=50, message="half"))
    await dispatcher.progress(w, a.attempt_id, ProgressReport(percent=60))

    assert store.status_writes == 2
    assert store.status("a")["progress"]["percent"] == 50
    assert store.status("a")["progress"]["message"] == "half"
    with pytest.raises(AttemptNotCurrent):
        await dispatcher.progress(worker("w2"), a.attempt_id, ProgressReport(percent=70))
    await dispatcher.complete(w, a.attempt_id, "done")
    assert store.phase("a") == "Succeeded"


# -- status writes ------------------------------------------------------------------------


PAUSED = Blocked(WaitReason.POOL_PAUSED, "paused")


def blocked_by(
    message: str, reason: WaitReason = WaitReason.POOL_PAUSED
) -> Callable[[TrackedJob], Blocked | None]:
    return lambda job: Blocked(reason, message)


async def test_a_job_that_waits_its_turn_is_never_written_and_rarely_checked(
    store, make_dispatcher, mono
):
    checks: list[float] = []

    def why_blocked(job: TrackedJob) -> Blocked | None:
        checks.append(mono())
        return None  # a worker could take it: it only waits behind others

    dispatcher = make_dispatcher(why_blocked=why_blocked)
    start = mono()
    submit(store, dispatcher, "a")
    for _ in range(600):  # ten minutes, a tick a second
        mono.advance(1.0)
        await tick(dispatcher)

    assert store.status_writes == 0
    # Checked after 2 s, then after as long again as it has waited, at most every 60 s.
    assert [t - start for t in checks[:4]] == pytest.approx([2.0, 4.0, 8.0, 16.0], abs=1.01)
    assert len(checks) <= 16, checks


async def test_a_blocked_job_is_written_queued_once_with_the_reason(store, make_dispatcher, mono):
    dispatcher = make_dispatcher(why_blocked=blocked_by("pool ns/pool is paused"))
    submit(store, dispatcher, "a")
    await tick(dispatcher)
    assert store.status_writes == 0  # not waited long enough

    mono.advance(2.5)  # past blocked_check_seconds
    for _ in range(3):
        await tick(dispatcher)
        mono.advance(60)

    assert store.phases_written("a") == ["Queued"]
    assert store.status("a")["message"] == "pool ns/pool is paused"
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.complete(w, a.attempt_id, "ok")
    await tick(dispatcher)
    assert store.phases_written("a") == ["Queued", "Running", "Succeeded"]


async def test_writes_a_worker_waits_on_go_first_bookkeeping_last(store, make_dispatcher, mono):
    dispatcher = make_dispatcher(why_blocked=lambda job: PAUSED if job.name == "b" else None)
    submit(store, dispatcher, "a")
    submit(store, dispatcher, "b", skill="other")
    mono.advance(2.5)
    await tick(dispatcher)  # "b" is blocked: Queued
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.complete(w, a.attempt_id, "ok")

    assert store.write_priorities == [
        ("b", "Queued", Priority.BACKGROUND),
        ("a", "Running", Priority.CRITICAL),
        ("a", "Succeeded", Priority.CRITICAL),
    ]


async def test_queued_writes_of_many_blocked_jobs_are_rate_limited(store, make_dispatcher, mono):
    dispatcher = make_dispatcher(
        why_blocked=blocked_by("no WorkerPool 'pool'", WaitReason.POOL_NOT_FOUND)
    )
    for i in range(300):
        submit(store, dispatcher, f"j{i}")
    mono.advance(2.5)
    await tick(dispatcher)
    burst = dispatcher.settings.queued_writes_burst
    assert 0 < store.status_writes <= burst  # the burst, then the budget per second

    per_second = dispatcher.settings.queued_writes_per_second
    for second in range(1, 4):
        mono.advance(1.0)
        await tick(dispatcher)
        assert store.status_writes <= burst + per_second * second + 1
    for _ in range(30):  # the rest follow at the budget's pace, each once
        mono.advance(1.0)
        await tick(dispatcher)
    assert all(store.phases_written(f"j{i}") == ["Queued"] for i in range(300))


async def test_a_job_claimed_before_the_delay_costs_exactly_two_writes(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()
    await tick(dispatcher)
    a = await claim_one(dispatcher, w)
    await tick(dispatcher)
    await dispatcher.complete(w, a.attempt_id, "ok")
    await tick(dispatcher)

    assert store.phases_written("a") == ["Running", "Succeeded"]
    assert store.status_writes == 2


@pytest.mark.parametrize("claim_first", [True, False], ids=["claim-first", "tick-first"])
async def test_a_claim_racing_the_queued_write_still_costs_no_queued_write(
    store, make_dispatcher, mono, claim_first
):
    dispatcher = make_dispatcher(
        why_blocked=blocked_by("the pool is degraded", WaitReason.POOL_DEGRADED)
    )
    submit(store, dispatcher, "a")
    mono.advance(2.5)
    w = worker()

    if claim_first:
        got, _ = await asyncio.gather(dispatcher.claim(w, 1, 0), ticking(dispatcher))
    else:
        _, got = await asyncio.gather(ticking(dispatcher), dispatcher.claim(w, 1, 0))
    assert await settle(dispatcher) == []

    assert [a.job.name for a in got] == ["a"]
    assert store.phases_written("a") == ["Running"]
    assert store.conflicts == 0  # the two never interleave: one waits for the other


# -- TTL ----------------------------------------------------------------------------------


async def test_a_finished_job_is_kept_as_a_slim_record_that_is_never_written(store, dispatcher):
    submit(store, dispatcher, "a", params={"blob": "x" * 10_000}, ttlSecondsAfterFinished=60)
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.complete(w, a.attempt_id, {"big": "y" * 10_000})

    kept = dispatcher.jobs["uid-a"]
    assert kept.slim and kept.spec.params == {} and kept.status is not None
    assert kept.status.result is None and kept.status.attempts == []
    assert (kept.phase, kept.spec.ttl_seconds_after_finished) == ("Succeeded", 60)
    assert store.status("a")["result"] == {"big": "y" * 10_000}  # the API server keeps it all
    with pytest.raises(AttemptNotCurrent):  # a late duplicate changes nothing
        await dispatcher.complete(w, a.attempt_id, "again")
    assert store.phases_written("a") == ["Running", "Succeeded"]


async def test_a_finished_job_is_deleted_ttl_seconds_after_completion(store, dispatcher, clock):
    obj = submit(store, dispatcher, "a", ttlSecondsAfterFinished=30)
    w = worker()
    a = await claim_one(dispatcher, w)
    clock.advance(5)
    await dispatcher.complete(w, a.attempt_id, "ok")
    completed = clock.now

    clock.now = completed + (at(29.9) - at(0))
    await tick(dispatcher)
    assert store.delete_calls == 0

    clock.now = completed + (at(30) - at(0))
    await tick(dispatcher)
    assert store.deleted == ["a"]

    clock.advance(10)
    await tick(dispatcher)
    assert store.delete_calls == 1
    dispatcher.observe(obj, deleted=True)  # the watch's DELETED event
    assert "uid-a" not in dispatcher.jobs


async def test_a_job_without_ttl_is_kept(store, dispatcher, clock):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.complete(w, a.attempt_id, "ok")

    clock.advance(10**6)
    await tick(dispatcher)

    assert store.delete_calls == 0


async def test_a_job_finished_before_a_restart_is_deleted_when_its_ttl_is_past(
    store, dispatcher, clock
):
    finished = {
        "phase": "Failed",
        "attempt": 1,
        "startTime": ts(at(0)),
        "completionTime": ts(at(10)),
        "error": {"type": "E", "message": "", "retryable": False},
    }
    dispatcher.observe(store.create("old", ttlSecondsAfterFinished=30, status=finished))
    dispatcher.observe(store.create("young", ttlSecondsAfterFinished=3600, status=finished))

    await tick(dispatcher)  # the clock is at T0 + 60 s

    assert store.deleted == ["old"]


async def test_a_failed_ttl_deletion_is_retried(store, dispatcher, mono):
    submit(store, dispatcher, "a", ttlSecondsAfterFinished=0)
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.complete(w, a.attempt_id, "ok")
    store.delete_errors.append(RuntimeError("API server unavailable"))

    dispatcher.tick()
    assert await settle(dispatcher) == []  # logged, not left as an unretrieved task error
    assert store.deleted == []
    dispatcher.tick()
    assert await settle(dispatcher) == []
    assert store.deleted == []  # not before its backoff
    mono.advance(1.0)  # write_retry_initial_seconds
    dispatcher.tick()
    await settle(dispatcher)

    assert store.deleted == ["a"]
