"""The state machine's holds and runs, rule by rule (the phase x event table is in
``test_jobs_machine``): suspend and resume, reruns, idempotency mirrors, the timeline,
and the conditions of a job that something other than its turn holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_jobs_machine import NOW, T0, make_spec, retrying, running, t

from shiftboss.api.job import AttemptOutcome, JobError, JobPhase, JobStatus
from shiftboss.api.jobstatus import MAX_RUN_HISTORY, MAX_TIMELINE, MirroredJob, WaitReason
from shiftboss.jobs.machine import (
    AttemptDisrupted,
    AttemptFailed,
    CancelRequested,
    Claimed,
    Completed,
    DeadlineExceeded,
    Enqueued,
    InvalidTransition,
    LeaseExpired,
    Mirrored,
    MirrorReleased,
    MirrorSucceeded,
    RerunRequested,
    Resumed,
    SuspendRequested,
    active_deadline,
    transition,
)

SUSPENDED_SPEC = make_spec().model_copy(update={"suspend": True})
SPEC = make_spec()
FIRST = MirroredJob(name="first", uid="uid-1")


def conditions(status: JobStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (str(c.status), c.reason or "") for c in status.conditions}


# -- suspend ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [None, JobStatus(phase=JobPhase.QUEUED)], ids=["new", "queued"])
def test_suspend_holds_a_waiting_job(status: JobStatus | None) -> None:
    held = transition(SUSPENDED_SPEC, status, SuspendRequested(NOW))
    assert held.phase == JobPhase.SUSPENDED
    assert held.message is not None and "set spec.suspend to false" in held.message
    assert conditions(held) == {"Ready": ("False", "Suspended"), "Suspended": ("True", "Suspended")}


def test_suspend_needs_the_spec_to_ask_for_it() -> None:
    with pytest.raises(InvalidTransition):
        transition(SPEC, JobStatus(phase=JobPhase.QUEUED), SuspendRequested(NOW))


def test_a_suspended_retry_keeps_its_due_time_and_resumes_into_it() -> None:
    due = NOW + timedelta(seconds=30)
    held = transition(SUSPENDED_SPEC, retrying(due), SuspendRequested(NOW))
    assert held.next_attempt_at == due
    assert held.message is not None and "due at 12:02:10Z" in held.message

    early = transition(SPEC, held, Resumed(NOW + timedelta(seconds=10)))
    assert early.phase == JobPhase.RETRYING and early.next_attempt_at == due
    late = transition(SPEC, held, Resumed(NOW + timedelta(seconds=60)))
    assert late.phase == JobPhase.QUEUED and late.next_attempt_at is None


def test_resume_restarts_the_active_deadline_as_batch_v1_does() -> None:
    spec = make_spec().model_copy(update={"active_deadline_seconds": 60})
    held = transition(
        spec.model_copy(update={"suspend": True}), retrying(None), SuspendRequested(t(10))
    )
    assert held.start_time == T0 and active_deadline(spec, held) == t(60)
    resumed = transition(spec, held, Resumed(t(3600)))
    assert resumed.start_time == t(3600)
    assert active_deadline(spec, resumed) == t(3660)
    # A job that never started has no clock to restart: its first claim starts it.
    never = transition(SUSPENDED_SPEC, None, SuspendRequested(t(10)))
    assert transition(SPEC, never, Resumed(t(20))).start_time is None


def test_resume_needs_the_spec_to_have_cleared_suspend() -> None:
    held = transition(SUSPENDED_SPEC, None, SuspendRequested(NOW))
    with pytest.raises(InvalidTransition):
        transition(SUSPENDED_SPEC, held, Resumed(NOW))
    assert transition(SPEC, held, Resumed(NOW)).phase == JobPhase.QUEUED


def test_a_suspended_job_is_never_claimed() -> None:
    with pytest.raises(InvalidTransition):
        transition(SUSPENDED_SPEC, JobStatus(phase=JobPhase.QUEUED), Claimed("w", NOW))
    held = transition(SUSPENDED_SPEC, None, SuspendRequested(NOW))
    with pytest.raises(InvalidTransition):
        transition(SPEC, held, Claimed("w", NOW))  # resumed in spec, not yet in status


def test_a_running_attempt_finishes_under_suspend_then_the_job_holds() -> None:
    done = transition(SUSPENDED_SPEC, running(), Completed({"ok": True}, NOW))
    assert done.phase == JobPhase.SUCCEEDED  # its outcome stands

    failed = transition(SUSPENDED_SPEC, running(), AttemptFailed("IOError", "x", True, NOW))
    assert failed.phase == JobPhase.SUSPENDED
    assert failed.next_attempt_at is not None  # the retry waits for the resume
    assert failed.attempts[-1].outcome == AttemptOutcome.FAILED
    assert failed.counted_attempts == 1

    lost = transition(SUSPENDED_SPEC, running(), LeaseExpired(NOW))
    assert lost.phase == JobPhase.SUSPENDED

    disrupted = transition(SUSPENDED_SPEC, running(), AttemptDisrupted("pod deleted", NOW))
    assert disrupted.phase == JobPhase.SUSPENDED
    assert disrupted.counted_attempts == 0 and disrupted.next_attempt_at is None

    fatal = transition(SUSPENDED_SPEC, running(), AttemptFailed("ValueError", "x", False, NOW))
    assert fatal.phase == JobPhase.FAILED  # nothing left to hold


def test_a_suspended_job_can_be_cancelled_and_can_run_out_of_time() -> None:
    held = transition(SUSPENDED_SPEC, None, SuspendRequested(NOW))
    assert transition(SUSPENDED_SPEC, held, CancelRequested(NOW)).phase == JobPhase.CANCELLED
    assert transition(SUSPENDED_SPEC, held, DeadlineExceeded(NOW)).phase == JobPhase.FAILED


# -- reruns --------------------------------------------------------------------------------


def finished_run(phase: JobPhase = JobPhase.SUCCEEDED, attempts: int = 2) -> JobStatus:
    status: JobStatus | None = None
    for n in range(attempts):
        status = transition(SPEC, status, Claimed(f"w-{n}", t(10 * n)))
        if n < attempts - 1:
            status = transition(SPEC, status, AttemptFailed("IOError", "x", True, t(10 * n + 1)))
            status.next_attempt_at = None  # due at once
    assert status is not None
    if phase == JobPhase.SUCCEEDED:
        return transition(SPEC, status, Completed({"n": 1}, t(100)))
    return transition(SPEC, status, AttemptFailed("ValueError", "bad", False, t(100)))


def test_a_rerun_starts_a_fresh_run_and_keeps_the_last_one() -> None:
    done = finished_run(JobPhase.FAILED, attempts=2)
    assert done.run_generation == 0
    again = transition(SPEC, done, RerunRequested(1, NOW))

    assert again.phase == JobPhase.QUEUED and again.run_generation == 1
    assert again.attempts == [] and again.counted_attempts == 0
    assert again.result is None and again.error is None and again.completion_time is None
    assert again.start_time is None
    # Attempt numbers go on: a late report of attempt 2 can never pass for the new run's.
    assert again.attempt == 2 and again.run_first_attempt == 3
    (previous,) = again.runs
    assert (previous.run_generation, previous.phase, previous.attempts) == (0, JobPhase.FAILED, 2)
    assert previous.last_attempt == 2
    assert previous.error == JobError(type="ValueError", message="bad", retryable=False)
    assert [(e.reason, e.worker) for e in again.timeline] == [("RerunRequested", None)]
    assert conditions(again)["Reconciling"] == ("True", "Queued")

    claimed = transition(SPEC, again, Claimed("w-9", NOW))
    assert claimed.attempt == 3 and claimed.start_time == NOW


def test_max_attempts_counts_per_run() -> None:
    spec = make_spec(max_attempts=2)
    again = transition(spec, finished_run(JobPhase.FAILED, attempts=2), RerunRequested(1, NOW))
    claimed = transition(spec, again, Claimed("w", NOW))
    first_failure = transition(spec, claimed, AttemptFailed("IOError", "x", True, NOW))
    assert first_failure.phase == JobPhase.RETRYING  # attempt 3, but the run's first


@pytest.mark.parametrize("run", [0, -1], ids=["same", "lower"])
def test_a_rerun_needs_a_higher_run_generation(run: int) -> None:
    done = transition(SPEC, finished_run(), RerunRequested(2, NOW))
    done = transition(SPEC, transition(SPEC, done, Claimed("w", NOW)), Completed(1, NOW))
    with pytest.raises(InvalidTransition):
        transition(SPEC, done, RerunRequested(2 + run, NOW))


def test_a_cancelled_job_never_runs_again_and_an_unfinished_one_is_not_rerun() -> None:
    cancelled_spec = SPEC.model_copy(update={"cancel": True})
    cancelled = transition(cancelled_spec, JobStatus(phase=JobPhase.QUEUED), CancelRequested(NOW))
    with pytest.raises(InvalidTransition):
        transition(cancelled_spec, cancelled, RerunRequested(1, NOW))
    with pytest.raises(InvalidTransition):
        transition(SPEC, running(), RerunRequested(1, NOW))


def test_a_rerun_under_suspend_is_held() -> None:
    again = transition(SUSPENDED_SPEC, finished_run(), RerunRequested(1, NOW))
    assert again.phase == JobPhase.SUSPENDED


def test_the_run_history_is_bounded() -> None:
    status = finished_run(attempts=1)
    for run in range(1, MAX_RUN_HISTORY + 5):
        status = transition(SPEC, status, RerunRequested(run, NOW))
        status = transition(SPEC, status, Claimed("w", NOW))
        status = transition(SPEC, status, Completed(run, NOW))
    assert len(status.runs) == MAX_RUN_HISTORY
    assert [r.run_generation for r in status.runs] == list(range(4, MAX_RUN_HISTORY + 4))
    assert status.runs[-1].last_attempt == status.attempt - 1


def test_a_new_job_is_stamped_with_the_run_it_was_asked_for() -> None:
    gitops = SPEC.model_copy(update={"run_generation": 3})
    assert transition(gitops, None, Claimed("w", NOW)).run_generation == 3
    annotated = transition(SPEC, None, Claimed("w", NOW), run_generation=5)
    assert annotated.run_generation == 5


# -- idempotency mirrors -------------------------------------------------------------------


def test_a_mirror_waits_is_never_claimed_and_ends_with_the_result() -> None:
    mirror = transition(SPEC, None, Mirrored(FIRST, "Running", NOW))
    assert mirror.phase == JobPhase.QUEUED and mirror.mirror_of == FIRST
    assert mirror.message is not None and "first" in mirror.message
    assert conditions(mirror) == {
        "Ready": ("False", "Mirroring"),
        "Reconciling": ("True", "Mirroring"),
    }
    with pytest.raises(InvalidTransition):
        transition(SPEC, mirror, Claimed("w", NOW))
    with pytest.raises(InvalidTransition):
        transition(SPEC, mirror, Enqueued(NOW))

    done = transition(SPEC, mirror, MirrorSucceeded(FIRST, {"n": 5}, t(200)))
    assert done.phase == JobPhase.SUCCEEDED and done.result == {"n": 5}
    assert done.attempt == 0 and done.attempts == []
    assert done.completion_time == t(200)


def test_a_released_mirror_runs_on_its_own() -> None:
    mirror = transition(SPEC, None, Mirrored(FIRST, "Running", NOW))
    released = transition(SPEC, mirror, MirrorReleased("job first failed", NOW))
    assert released.mirror_of is None and released.phase == JobPhase.QUEUED
    assert transition(SPEC, released, Claimed("w", NOW)).phase == JobPhase.RUNNING
    with pytest.raises(InvalidTransition):  # nothing to release
        transition(SPEC, released, MirrorReleased("again", NOW))


def test_a_job_that_ran_never_becomes_a_mirror() -> None:
    for status in (running(), retrying(NOW)):
        with pytest.raises(InvalidTransition):
            transition(SPEC, status, Mirrored(FIRST, "Running", NOW))
        with pytest.raises(InvalidTransition):
            transition(SPEC, status, MirrorSucceeded(FIRST, 1, NOW))


# -- the timeline --------------------------------------------------------------------------


def test_every_transition_is_in_the_timeline() -> None:
    spec = make_spec(max_attempts=2)
    status = transition(spec, None, Claimed("w-1", t(1)))
    status = transition(spec, status, AttemptFailed("IOError", "disk", True, t(2)))
    status = transition(spec, status, Claimed("w-2", t(30)))
    status = transition(spec, status, Completed("ok", t(31)))
    rows = [
        (e.from_phase, e.to_phase, e.reason, e.attempt, e.worker, e.time) for e in status.timeline
    ]
    assert rows == [
        (None, JobPhase.RUNNING, "Claimed", 1, "w-1", t(1)),
        (JobPhase.RUNNING, JobPhase.RETRYING, "AttemptFailed", 1, "w-1", t(2)),
        (JobPhase.RETRYING, JobPhase.RUNNING, "Claimed", 2, "w-2", t(30)),
        (JobPhase.RUNNING, JobPhase.SUCCEEDED, "Completed", 2, "w-2", t(31)),
    ]
    assert status.timeline[-1].message == "succeeded on attempt 2"


def test_the_timeline_is_bounded_and_keeps_the_latest() -> None:
    spec = make_spec(max_attempts=100, initial=1, max_delay=1)
    status: JobStatus | None = None
    for n in range(MAX_TIMELINE):
        status = transition(spec, status, Claimed("w", T0 + timedelta(minutes=n)))
        status = transition(spec, status, LeaseExpired(T0 + timedelta(minutes=n, seconds=30)))
    assert status is not None and len(status.timeline) == MAX_TIMELINE
    assert status.timeline[-1].reason == "LeaseExpired"
    assert status.timeline[0].attempt == MAX_TIMELINE // 2 + 1
    assert len(status.model_dump_json()) < 16_000  # a Job stays small


def test_timeline_reasons_name_what_happened() -> None:
    blocked = transition(
        SPEC, None, Enqueued(NOW, "no worker offers skill 'x'", WaitReason.NO_WORKER_WITH_SKILL)
    )
    assert blocked.timeline[-1].reason == "NoWorkerWithSkill"
    handed_back = transition(SPEC, running(), AttemptFailed("WorkerShutdown", "bye", True, NOW))
    assert handed_back.timeline[-1].reason == "Disrupted"
    assert transition(SPEC, running(), CancelRequested(NOW)).timeline[-1].reason == "Cancelled"


# -- blocked jobs ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "stalled"),
    [
        (WaitReason.POOL_NOT_FOUND, True),
        (WaitReason.NO_WORKER_WITH_SKILL, True),
        (WaitReason.POOL_PAUSED, False),
        (WaitReason.POOL_DEGRADED, False),
        (WaitReason.NO_READY_WORKER, False),
    ],
)
def test_a_blocked_job_is_not_schedulable_and_stalled_only_without_a_way_forward(
    reason: WaitReason, stalled: bool
) -> None:
    status = transition(SPEC, None, Enqueued(NOW, "why", reason))
    progress = "Stalled" if stalled else "Reconciling"
    assert conditions(status) == {
        "Ready": ("False", str(reason)),
        progress: ("True", str(reason)),
        "Schedulable": ("False", str(reason)),
    }
    unblocked = transition(SPEC, status, Enqueued(NOW + timedelta(seconds=5)))
    assert conditions(unblocked) == {
        "Ready": ("False", "Queued"),
        "Reconciling": ("True", "Queued"),
    }
    claimed = transition(SPEC, status, Claimed("w", NOW + timedelta(seconds=5)))
    assert "Schedulable" not in conditions(claimed) and "Stalled" not in conditions(claimed)
