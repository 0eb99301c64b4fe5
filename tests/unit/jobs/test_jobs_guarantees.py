"""The dispatcher's guarantees under faults, against the in-memory store's fault injection:
no timer-driven transition is lost to a failed write, a lost claim answer never costs an
attempt, disruptions are not counted, and a stalled or restarted operator blames no one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from dispatching import (
    FakeMonotonic,
    claim_one,
    commands,
    end_grace,
    expire,
    running_status,
    settle,
    submit,
    tick,
    worker,
)
from fake_store import NAMESPACE, POOL, FakeClock, FakeJobStore, at

from shiftboss.api.jobstatus import WaitReason
from shiftboss.jobs.book import Alarm
from shiftboss.jobs.dispatcher import Dispatcher, JobBusy
from shiftboss.jobs.events import Blocked
from shiftboss.jobs.store import StaleJob
from worker_runtime.protocol import FailReport

#: What the API server can do to a write: (fault, lands).
FAULTS = {
    "503": lambda store: store.fail_next("write", 503),
    "429": lambda store: store.fail_next("write", 429),
    "timeout": lambda store: store.time_out_next("write"),
    "reply-lost": lambda store: store.lose_reply_next("write"),
}

Setup = Callable[[FakeJobStore, Dispatcher, FakeClock, FakeMonotonic], Awaitable[None]]


async def lease_lost(store, dispatcher, clock, mono) -> None:
    submit(store, dispatcher, "a", retry={"maxAttempts": 1})
    a = await claim_one(dispatcher, worker())
    expire(dispatcher, a.attempt_id)


async def timed_out(store, dispatcher, clock, mono) -> None:
    submit(store, dispatcher, "a", timeoutSeconds=5, retry={"maxAttempts": 1})
    a = await claim_one(dispatcher, worker())
    clock.advance(6)
    await tick(dispatcher)  # told to stop
    end_grace(dispatcher, a.attempt_id)


async def waited_blocked(store, dispatcher, clock, mono) -> None:
    dispatcher.timers.why_blocked = lambda job: Blocked(
        WaitReason.POOL_PAUSED, "pool pool is paused"
    )
    submit(store, dispatcher, "a")
    mono.advance(2.5)  # past blocked_check_seconds


async def cancelled_while_queued(store, dispatcher, clock, mono) -> None:
    submit(store, dispatcher, "a")
    dispatcher.observe(store.modify("a", lambda o: o["spec"].update(cancel=True)))


async def past_deadline_while_retrying(store, dispatcher, clock, mono) -> None:
    submit(store, dispatcher, "a", activeDeadlineSeconds=30, retry={"maxAttempts": 3})
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.fail(w, a.attempt_id, FailReport(error_type="E", retryable=True))
    clock.advance(60)


#: Timer-driven transitions: how to make one due, and the phase it writes.
TIMERS: dict[str, tuple[Setup, str]] = {
    "lease-expiry": (lease_lost, "Failed"),
    "timeout-fence": (timed_out, "Failed"),
    "queued-write": (waited_blocked, "Queued"),
    "cancel-while-queued": (cancelled_while_queued, "Cancelled"),
    "deadline-while-retrying": (past_deadline_while_retrying, "Failed"),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("timer", TIMERS)
async def test_a_timer_driven_write_that_fails_is_retried_until_it_lands(
    store, dispatcher, clock, mono, timer, fault
):
    setup, phase = TIMERS[timer]
    await setup(store, dispatcher, clock, mono)
    before = store.phases_written("a")
    FAULTS[fault](store)

    await tick(dispatcher)  # the write fails (or lands and its answer is lost)
    assert store.unfired_faults() == []
    landed = fault == "reply-lost"
    assert store.phases_written("a") == before + ([phase] if landed else [])
    await tick(dispatcher)  # within the backoff: not tried again yet
    mono.advance(1.0)  # write_retry_initial_seconds
    await tick(dispatcher)
    await tick(dispatcher)

    assert store.phase("a") == phase
    assert store.phases_written("a") == [*before, phase]  # exactly once


async def test_a_failed_timer_write_backs_off_exponentially(store, dispatcher, mono):
    submit(store, dispatcher, "a", retry={"maxAttempts": 1})
    a = await claim_one(dispatcher, worker())
    expire(dispatcher, a.attempt_id)
    store.fail_next("write", 503, times=3)
    tries = []
    for _ in range(40):  # 10 s in 0.25 s steps
        await tick(dispatcher)
        tries.append(store.phase("a"))
        mono.advance(0.25)
    assert store.unfired_faults() == []
    assert tries[-1] == "Failed"
    # Three failures then success, spaced by the doubling backoff (jittered to 50-100 %).
    first_success = tries.index("Failed")
    assert 0.25 * first_success >= 0.5 + 1.0 + 2.0 * 0.5


async def test_resync_rebuilds_a_lost_timer_entry(store, dispatcher, clock, mono):
    submit(store, dispatcher, "a", retry={"maxAttempts": 2})
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.fail(w, a.attempt_id, FailReport(error_type="E", retryable=True))
    assert store.phase("a") == "Retrying"
    # An in-memory timer lost, whatever the cause.
    dispatcher.book.wall_timers.cancel((Alarm.RETRY, "uid-a"))
    clock.advance(600)
    await tick(dispatcher)
    assert await dispatcher.claim(w, 1, 0) == []  # nothing knows the retry is due

    mono.advance(dispatcher.settings.resync_seconds)
    await tick(dispatcher)  # the resync re-derives it from the status
    await tick(dispatcher)
    assert [x.job.name for x in await dispatcher.claim(w, 1, 0)] == ["a"]


async def test_a_stalled_operator_extends_every_lease_by_the_stall(store, dispatcher, mono):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    await tick(dispatcher)
    expires = dispatcher.leases[a.attempt_id].expires

    mono.advance(40)  # the event loop was stuck (or the process stopped) for 40 s
    await tick(dispatcher)

    assert store.phase("a") == "Running"  # not expired: no heartbeat could be heard
    assert dispatcher.leases[a.attempt_id].expires == pytest.approx(expires + 40 - 0.25)
    # After a whole lease of being able to hear the worker, it does expire.
    for _ in range(64):  # 16 s in ticks of 0.25 s
        mono.advance(0.25)
        await tick(dispatcher)
    assert store.phase("a") == "Retrying"


async def test_restored_attempts_keep_their_lease_for_the_restore_grace(
    store, make_dispatcher, mono
):
    store.create("a", status=running_status(1, "w1", at(0)))
    dispatcher = make_dispatcher(settings={"lease_seconds": 15, "restore_grace_seconds": 60})
    for job in store.listed():  # as the informer's first list hands them over
        dispatcher.book.track(job)
    w = worker("w1")

    mono.advance(59)
    await tick(dispatcher)
    assert store.phase("a") == "Running"
    assert commands(dispatcher, w, "uid-a.1") == []  # the worker is back: renewed
    assert store.phase("a") == "Running"
    await dispatcher.complete(w, "uid-a.1", "done")
    assert store.phase("a") == "Succeeded"
    assert store.status("a")["attempt"] == 1


# -- lost claim answers --------------------------------------------------------------------


async def test_a_retried_claim_gets_the_same_assignments_again(store, dispatcher):
    for name in ("a", "b", "c"):
        submit(store, dispatcher, name)
    w = worker()

    first = await dispatcher.claim(w, 2, 0, request_id="r1")
    again = await dispatcher.claim(w, 2, 0, request_id="r1")  # its answer was lost

    assert [x.attempt_id for x in again] == [x.attempt_id for x in first]
    assert store.status_writes == 2  # no new claim was written
    other = await dispatcher.claim(w, 2, 0, request_id="r2")  # a new claim
    assert [x.job.name for x in other] == ["c"]
    # Attempts no longer current are not replayed.
    await dispatcher.complete(w, first[0].attempt_id, "ok")
    replay = await dispatcher.claim(w, 2, 0, request_id="r2")
    assert [x.job.name for x in replay] == ["c"]


async def test_a_claim_whose_written_answer_was_lost_is_assigned_by_the_next_heartbeat(
    store, dispatcher, mono
):
    submit(store, dispatcher, "a")
    w = worker()
    store.lose_reply_next("write")  # the claim lands; its answer does not

    with pytest.raises(Exception, match=r"timed out|Timeout"):
        await dispatcher.claim(w, 1, 0)
    assert store.phase("a") == "Running"
    assert await dispatcher.claim(worker("w2"), 1, 0) == []  # not handed to anyone else

    mono.advance(dispatcher.settings.assign_after_seconds)
    [command] = dispatcher.heartbeat(w, [], False)
    assert command.type == "assign"
    assert command.assignment is not None and command.assignment.job.name == "a"
    await dispatcher.complete(w, command.assignment.attempt_id, "ran once")
    status = store.status("a")
    assert (status["phase"], status["attempt"]) == ("Succeeded", 1)


async def test_a_fresh_lease_is_not_assigned_again(store, dispatcher):
    submit(store, dispatcher, "a")
    w = worker()
    await claim_one(dispatcher, w)
    # The heartbeat crossed the claim's answer on the wire: the answer is on its way.
    assert dispatcher.heartbeat(w, [], False) == []


async def test_a_worker_of_another_pool_with_the_same_id_holds_nothing(store, dispatcher, mono):
    submit(store, dispatcher, "a")
    a = await claim_one(dispatcher, worker("w1"))
    impostor = worker("w1", pool="other")
    mono.advance(10)

    assert commands(dispatcher, impostor, a.attempt_id) == [("abandon", a.attempt_id)]
    assert dispatcher.heartbeat(impostor, [], False) == []  # no assign either


# -- disruptions ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["release", "worker-shutdown", "pod-deleted"])
async def test_disruptions_queue_the_job_again_without_counting(store, dispatcher, events, how):
    submit(store, dispatcher, "a", retry={"maxAttempts": 1})
    w = worker()
    a = await claim_one(dispatcher, w)

    if how == "release":
        await dispatcher.release(w, a.attempt_id, "no free slot")
    elif how == "worker-shutdown":  # a runtime that hands back by failing
        report = FailReport(error_type="WorkerShutdown", message="SIGTERM", retryable=True)
        await dispatcher.fail(w, a.attempt_id, report)
    else:
        dispatcher.worker_disrupted(NAMESPACE, "w1", "worker pod w1 was deleted")
        dispatcher.worker_gone(NAMESPACE, "w1")
        await tick(dispatcher)

    status = store.status("a")
    assert (status["phase"], status["countedAttempts"]) == ("Queued", 0)
    assert status["attempts"][-1]["outcome"] == "Disrupted"
    assert events.reasons("a") == ["Disrupted"]
    # With maxAttempts 1 the job still gets its one counted attempt.
    b = await claim_one(dispatcher, worker("w2"))
    assert b.attempt == 2
    await dispatcher.complete(worker("w2"), b.attempt_id, "ok")
    assert store.phase("a") == "Succeeded"


async def test_a_worker_that_crashed_loses_its_attempt_counted(store, dispatcher):
    submit(store, dispatcher, "a", retry={"maxAttempts": 1})
    await claim_one(dispatcher, worker())
    dispatcher.worker_gone(NAMESPACE, "w1")  # its pod failed on its own
    dispatcher.worker_disrupted(NAMESPACE, "w1", "deleted afterwards")  # then was removed
    await tick(dispatcher)

    status = store.status("a")
    assert (status["phase"], status["countedAttempts"]) == ("Failed", 1)
    assert status["attempts"][-1]["outcome"] == "LeaseExpired"


async def test_a_job_disrupted_past_its_active_deadline_fails(store, dispatcher, clock):
    submit(store, dispatcher, "a", activeDeadlineSeconds=30)
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.release(w, a.attempt_id, "draining")
    clock.advance(31)
    await tick(dispatcher)

    status = store.status("a")
    assert status["phase"] == "Failed"
    assert status["error"]["type"] == "DeadlineExceeded"


async def test_a_report_that_keeps_conflicting_is_busy_not_refused(store, dispatcher, monkeypatch):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)

    async def always_stale(job: Any, status: Any, priority: Any) -> Any:
        raise StaleJob("changed again")

    monkeypatch.setattr(store, "write_status", always_stale)
    with pytest.raises(JobBusy):  # 503: the worker retries; 409 would make it drop the result
        await dispatcher.complete(w, a.attempt_id, "ok")
    await settle(dispatcher)
    assert store.phase("a") == "Running"
    assert dispatcher.queued_count(NAMESPACE, POOL) == 0
