"""The dispatcher applying what a Job's spec or key asks for (``shiftboss.jobs.directives``):
suspend and resume, reruns, idempotency mirrors, and the rerun annotation, on the fake
store (the LocalCluster tests are in tests/integration/test_job_holds.py)."""

from __future__ import annotations

from datetime import timedelta

from dispatching import claim_one, submit, tick, worker
from fake_store import at

from shiftboss.api.job import RUN_GENERATION_ANNOTATION
from shiftboss.api.jobstatus import WaitReason
from shiftboss.jobs.events import Blocked
from worker_runtime.protocol import FailReport, ProgressReport


def set_spec(**fields):
    def change(obj):
        obj["spec"].update(fields)

    return change


def annotate(value: str):
    def change(obj):
        obj["metadata"].setdefault("annotations", {})[RUN_GENERATION_ANNOTATION] = value

    return change


async def succeed(dispatcher, w, result="ok"):
    a = await claim_one(dispatcher, w)
    await dispatcher.complete(w, a.attempt_id, result)
    return a


async def test_a_suspended_job_is_written_once_and_never_claimed_until_resumed(
    store, dispatcher, events
):
    submit(store, dispatcher, "a", suspend=True)
    w = worker()
    await tick(dispatcher)
    await tick(dispatcher)
    assert store.phases_written("a") == ["Suspended"]
    assert await dispatcher.claim(w, 1, 0) == []
    assert events.reasons("a") == ["SuspendRequested"]

    dispatcher.observe(store.modify("a", set_spec(suspend=False)))
    await tick(dispatcher)
    assert store.phases_written("a") == ["Suspended", "Queued"]
    await succeed(dispatcher, w)
    assert store.phases_written("a") == ["Suspended", "Queued", "Running", "Succeeded"]


async def test_suspending_a_queued_job_takes_it_out_of_the_queue(store, dispatcher):
    submit(store, dispatcher, "a")
    submit(store, dispatcher, "b")
    dispatcher.observe(store.modify("a", set_spec(suspend=True)))
    assert dispatcher.queued_count("ns", "pool") == 1
    w = worker()
    got = await claim_one(dispatcher, w)
    assert got.job.name == "b"  # a was first, but it is held


async def test_a_rerun_reads_the_finished_job_and_starts_a_new_run(store, dispatcher, events):
    w = worker()
    submit(store, dispatcher, "a")
    await succeed(dispatcher, w, {"n": 1})
    dispatcher.observe(store.modify("a", set_spec(runGeneration=1)))
    reads = store.reads
    await tick(dispatcher)

    assert store.reads == reads + 1  # the book keeps finished jobs slim: read it whole
    status = store.status("a")
    assert status["phase"] == "Queued" and status["runGeneration"] == 1
    assert [(r["runGeneration"], r["phase"]) for r in status["runs"]] == [(0, "Succeeded")]
    assert "Rerun" in events.reasons("a")
    second = await succeed(dispatcher, w, {"n": 2})
    assert second.attempt_id.endswith(".2")  # never the first run's attempt id again
    assert store.status("a")["result"] == {"n": 2}

    await tick(dispatcher)
    assert store.phases_written("a")[-1] == "Succeeded"  # no third run


async def test_the_annotation_asks_for_a_rerun_and_a_bad_one_is_refused_aloud(
    store, dispatcher, events
):
    w = worker()
    submit(store, dispatcher, "a")
    await succeed(dispatcher, w)
    dispatcher.observe(store.modify("a", annotate("not-a-number")))
    await tick(dispatcher)
    assert store.phase("a") == "Succeeded"
    (warning,) = [e for e in events.recorded if e["reason"] == "InvalidAnnotation"]
    assert warning["warning"] and "whole number" in warning["message"]

    dispatcher.observe(store.modify("a", annotate("1")))
    await tick(dispatcher)
    assert store.status("a")["runGeneration"] == 1 and store.phase("a") == "Queued"


async def test_a_cancelled_job_is_never_rerun(store, dispatcher):
    submit(store, dispatcher, "a", cancel=True)
    await tick(dispatcher)
    assert store.phase("a") == "Cancelled"
    dispatcher.observe(store.modify("a", set_spec(runGeneration=1)))
    await tick(dispatcher)
    assert store.phases_written("a") == ["Cancelled"]


async def test_a_second_job_with_the_key_mirrors_the_first_and_gets_its_result(store, dispatcher):
    submit(store, dispatcher, "first", idempotencyKey="k")
    submit(store, dispatcher, "second", idempotencyKey="k", created=at(1))
    await tick(dispatcher)
    assert store.status("second")["mirrorOf"] == {"name": "first", "uid": "uid-first"}
    assert store.phase("second") == "Queued"

    w = worker()
    a = await claim_one(dispatcher, w)
    assert a.job.name == "first"
    assert await dispatcher.claim(w, 1, 0) == []  # the mirror is never claimed
    await dispatcher.complete(w, a.attempt_id, {"charged": 12})
    await tick(dispatcher)
    second = store.status("second")
    assert second["phase"] == "Succeeded" and second["result"] == {"charged": 12}
    assert second["attempt"] == 0

    submit(store, dispatcher, "third", idempotencyKey="k", created=at(60))
    await tick(dispatcher)
    assert store.phases_written("third") == ["Succeeded"]  # at once, one write


async def test_a_mirror_of_a_job_that_failed_runs_on_its_own(store, dispatcher):
    submit(store, dispatcher, "first", idempotencyKey="k", skill="explode")
    submit(store, dispatcher, "second", idempotencyKey="k", created=at(1), skill="explode")
    await tick(dispatcher)
    w = worker("w1", "explode")
    a = await claim_one(dispatcher, w)
    await dispatcher.fail(w, a.attempt_id, fatal("nope"))
    await tick(dispatcher)
    assert store.phase("first") == "Failed"
    assert store.status("second").get("mirrorOf") is None
    b = await claim_one(dispatcher, w)
    assert b.job.name == "second"


async def test_keys_are_per_namespace_and_a_later_job_never_holds_an_earlier_one(store, dispatcher):
    submit(store, dispatcher, "late", idempotencyKey="k", created=at(10))
    submit(store, dispatcher, "early", idempotencyKey="k", created=at(0))
    submit(store, dispatcher, "elsewhere", idempotencyKey="k", namespace="other")
    await tick(dispatcher)
    assert store.status("late")["mirrorOf"]["name"] == "early"
    assert "mirrorOf" not in store.status("early")
    assert store.status("elsewhere", namespace="other") == {}


def fatal(message: str) -> FailReport:
    return FailReport(error_type="ValueError", message=message, retryable=False)


async def test_a_blocked_job_is_written_again_when_its_reason_goes(store, make_dispatcher, mono):
    blocked = {"now": Blocked(WaitReason.POOL_NOT_FOUND, "no WorkerPool 'pool'")}
    dispatcher = make_dispatcher(why_blocked=lambda job: blocked["now"])
    submit(store, dispatcher, "a")
    mono.advance(2.5)
    await tick(dispatcher)
    conditions = {c["type"]: c["reason"] for c in store.status("a")["conditions"]}
    assert conditions["Schedulable"] == "PoolNotFound" and conditions["Stalled"] == "PoolNotFound"

    blocked["now"] = None
    for _ in range(5):
        mono.advance(timedelta(seconds=10).total_seconds())
        await tick(dispatcher)
    status = store.status("a")
    assert store.phases_written("a") == ["Queued", "Queued"]
    assert status["message"] == "waiting for a worker"
    assert {c["type"] for c in status["conditions"]} == {"Ready", "Reconciling"}


async def test_a_suspended_job_does_not_run_out_of_time_and_resuming_restarts_the_clock(
    store, dispatcher, clock
):
    submit(store, dispatcher, "a", activeDeadlineSeconds=30)
    w = worker()
    a = await claim_one(dispatcher, w)
    await dispatcher.fail(w, a.attempt_id, FailReport(error_type="E", retry_after_seconds=5))
    dispatcher.observe(store.modify("a", set_spec(suspend=True)))
    await tick(dispatcher)
    assert store.phase("a") == "Suspended"

    clock.advance(600)  # held far past the deadline
    await tick(dispatcher)
    assert store.phase("a") == "Suspended"
    dispatcher.observe(store.modify("a", set_spec(suspend=False)))
    await tick(dispatcher)
    assert store.phase("a") == "Queued"  # not Failed: the clock starts again
    assert store.status("a")["startTime"] == store.status("a")["timeline"][-1]["time"]

    clock.advance(31)
    await tick(dispatcher)
    assert store.status("a")["error"]["type"] == "DeadlineExceeded"


async def test_a_rerun_the_watch_delivers_ahead_of_the_writes_answer_is_not_lost(store, dispatcher):
    """The user asks for a rerun the moment the job succeeds; the watch brings the write's
    echo and the annotation before the write's own answer is processed. The answer, older,
    must not replace them in the book (it did: the rerun was never started)."""
    w = worker()
    submit(store, dispatcher, "a")
    a = await claim_one(dispatcher, w)

    def watch_overtakes_the_answer(name: str) -> None:
        store.after_write = None
        dispatcher.observe(store.get(name))  # the write's own echo
        dispatcher.observe(store.modify(name, annotate("1")))

    store.after_write = watch_overtakes_the_answer
    await dispatcher.complete(w, a.attempt_id, "first")
    assert store.phase("a") == "Succeeded"
    await tick(dispatcher)
    status = store.status("a")
    assert (status["phase"], status["runGeneration"]) == ("Queued", 1)


async def test_a_cancel_the_watch_delivers_ahead_of_a_progress_writes_answer_is_kept(
    store, dispatcher, clock
):
    w = worker()
    submit(store, dispatcher, "a")
    a = await claim_one(dispatcher, w)

    def watch_overtakes_the_answer(name: str) -> None:
        store.after_write = None
        dispatcher.observe(store.get(name))
        dispatcher.observe(store.modify(name, set_spec(cancel=True)))

    store.after_write = watch_overtakes_the_answer
    clock.advance(6)  # past the progress write interval
    await dispatcher.progress(w, a.attempt_id, ProgressReport(percent=50))
    await tick(dispatcher)
    [command] = dispatcher.heartbeat(w, [a.attempt_id], False)
    assert command.type == "cancel"
