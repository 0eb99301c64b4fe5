"""The Job lifecycle state machine (``shiftboss.jobs.machine``), exhaustively.

Every (phase x event) pair is checked against one expected-outcome table, then each rule
is checked field by field: claims, completion, the retry policy (backoff, cap, jitter,
retry-after, non-retryable errors, max attempts), lease expiry, timeouts, cancellation,
deadlines, rejected params, purity, determinism, the bounded attempt history, and whole
paths through the machine.  All times are fixed, timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shiftboss.api.job import (
    MAX_ATTEMPT_HISTORY,
    AttemptOutcome,
    AttemptRecord,
    JobError,
    JobPhase,
    JobProgress,
    JobSpec,
    JobStatus,
    format_instant,
)
from shiftboss.api.jobstatus import MirroredJob
from shiftboss.api.retry import Backoff, RetryPolicy
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
    ParamsRejected,
    RerunRequested,
    Resumed,
    StopKind,
    StopReason,
    SuspendRequested,
    TimedOut,
    active_deadline,
    attempt_deadline,
    claimable,
    fence_event,
    stop_reason,
    transition,
)
from shiftboss.jobs.retryrules import retry_delay

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
#: When the events of the phase x event table happen.
NOW = T0 + timedelta(seconds=100)


def t(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def make_spec(
    *,
    max_attempts: int = 3,
    initial: int = 10,
    factor: float = 2.0,
    max_delay: int = 300,
    jitter: float = 0.0,
    non_retryable: list[str] | None = None,
    timeout: int | None = 60,
    deadline: int | None = 3600,
) -> JobSpec:
    return JobSpec(
        pool="pool-a",
        skill="resize",
        params={"size": 3},
        timeout_seconds=timeout,
        active_deadline_seconds=deadline,
        retry=RetryPolicy(
            max_attempts=max_attempts,
            backoff=Backoff(
                initial_delay_seconds=initial,
                factor=factor,
                max_delay_seconds=max_delay,
                jitter=jitter,
            ),
            non_retryable_errors=non_retryable or [],
        ),
    )


SPEC = make_spec()
#: The Job another one mirrors (same idempotencyKey).
PRIMARY = MirroredJob(name="first", uid="uid-first")


def running(attempt: int = 1, worker: str = "w-1", started: datetime = T0) -> JobStatus:
    """A job running attempt ``attempt`` (first started at T0, this attempt at ``started``)."""
    return JobStatus(
        phase=JobPhase.RUNNING,
        attempt=attempt,
        counted_attempts=attempt - 1,
        worker=worker,
        start_time=T0,
        attempt_start_time=started,
        progress=JobProgress(percent=40, message="halfway", updated_at=started),
        attempts=[
            AttemptRecord(
                attempt=n,
                worker=f"w-old-{n}",
                start_time=T0,
                end_time=T0,
                outcome=AttemptOutcome.FAILED,
                error_type="ValueError",
                message="earlier failure",
            )
            for n in range(1, attempt)
        ],
        message=f"attempt {attempt} running on {worker}",
    )


def retrying(next_attempt_at: datetime | None) -> JobStatus:
    """A job whose first attempt failed, waiting for ``next_attempt_at``."""
    return JobStatus(
        phase=JobPhase.RETRYING,
        attempt=1,
        worker=None,
        start_time=T0,
        attempt_start_time=T0,
        next_attempt_at=next_attempt_at,
        attempts=[
            AttemptRecord(
                attempt=1,
                worker="w-1",
                start_time=T0,
                end_time=t(5),
                outcome=AttemptOutcome.FAILED,
                error_type="ValueError",
                message="boom",
            )
        ],
        message="attempt 1 failed (ValueError); next attempt at 12:00:15Z",
    )


def finished(phase: JobPhase) -> JobStatus:
    return JobStatus(
        phase=phase,
        attempt=1,
        worker="w-1",
        start_time=T0,
        attempt_start_time=T0,
        completion_time=t(50),
        duration="50s",
        attempts=[
            AttemptRecord(attempt=1, worker="w-1", start_time=T0, end_time=t(50), outcome=None)
        ],
        message=f"{phase}",
    )


#: Every phase a job can be in when an event arrives (a status of None is a new job).
STATES: dict[str, Callable[[], JobStatus | None]] = {
    "no status": lambda: None,
    "phase None": lambda: JobStatus(),
    "Pending": lambda: JobStatus(phase=JobPhase.PENDING, message="seen"),
    "Queued": lambda: JobStatus(phase=JobPhase.QUEUED, message="waiting for a worker"),
    "Running": lambda: running(),
    "Retrying(due)": lambda: retrying(NOW - timedelta(seconds=1)),
    "Retrying(not due)": lambda: retrying(NOW + timedelta(seconds=1)),
    "Succeeded": lambda: finished(JobPhase.SUCCEEDED),
    "Failed": lambda: finished(JobPhase.FAILED),
    "Cancelled": lambda: finished(JobPhase.CANCELLED),
    "Suspended": lambda: JobStatus(phase=JobPhase.SUSPENDED, message="suspended"),
    "Queued(mirror)": lambda: JobStatus(phase=JobPhase.QUEUED, mirror_of=PRIMARY, message="m"),
}

#: Every event type (AttemptFailed twice: retryable and not), all happening at NOW.
EVENTS: dict[str, Callable[[], Any]] = {
    "Enqueued": lambda: Enqueued(at=NOW),
    "Claimed": lambda: Claimed(worker="w-2", at=NOW),
    "Completed": lambda: Completed(result={"ok": True}, at=NOW),
    "AttemptFailed(retryable)": lambda: AttemptFailed("ValueError", "boom", True, NOW),
    "AttemptFailed(fatal)": lambda: AttemptFailed("ValueError", "boom", False, NOW),
    "LeaseExpired": lambda: LeaseExpired(at=NOW),
    "TimedOut": lambda: TimedOut(at=NOW),
    "CancelRequested": lambda: CancelRequested(at=NOW),
    "DeadlineExceeded": lambda: DeadlineExceeded(at=NOW),
    "ParamsRejected": lambda: ParamsRejected(message="size: must be <= 2", at=NOW),
    "SuspendRequested": lambda: SuspendRequested(at=NOW),
    "Resumed": lambda: Resumed(at=NOW),
    "RerunRequested": lambda: RerunRequested(run_generation=1, at=NOW),
    "Mirrored": lambda: Mirrored(PRIMARY, "Running", NOW),
    "MirrorReleased": lambda: MirrorReleased("job first failed", NOW),
    "MirrorSucceeded": lambda: MirrorSucceeded(PRIMARY, {"n": 5}, NOW),
}

X = InvalidTransition
SUS = JobPhase.SUSPENDED
Q = JobPhase.QUEUED
RUN = JobPhase.RUNNING
RTY = JobPhase.RETRYING
OK = JobPhase.SUCCEEDED
F = JobPhase.FAILED
C = JobPhase.CANCELLED

# fmt: off
#: The expected outcome of every (phase, event) pair, columns in EVENTS order:
#:  Enqueued Claimed Completed AF(retry) AF(fatal) Lease TimedOut Cancel Deadline Params
#:  | Suspend Resumed Rerun Mirrored MirrorReleased MirrorSucceeded
_TABLE: dict[str, tuple[Any, ...]] = {
    "no status":         (Q, RUN, X,  X,   X, X,   X,   C, F, F, SUS, X,   X, Q, X, OK),
    "phase None":        (Q, RUN, X,  X,   X, X,   X,   C, F, F, SUS, X,   X, Q, X, OK),
    "Pending":           (Q, RUN, X,  X,   X, X,   X,   C, F, F, SUS, X,   X, Q, X, OK),
    "Queued":            (Q, RUN, X,  X,   X, X,   X,   C, F, F, SUS, X,   X, Q, X, OK),
    "Running":           (X, X,   OK, RTY, F, RTY, RTY, C, F, X, X,   X,   X, X, X, X),
    "Retrying(due)":     (X, RUN, X,  X,   X, X,   X,   C, F, F, SUS, X,   X, X, X, X),
    "Retrying(not due)": (X, X,   X,  X,   X, X,   X,   C, F, F, SUS, X,   X, X, X, X),
    "Succeeded":         (X, X,   X,  X,   X, X,   X,   X, X, X, X,   X,   Q, X, X, X),
    "Failed":            (X, X,   X,  X,   X, X,   X,   X, X, X, X,   X,   Q, X, X, X),
    "Cancelled":         (X, X,   X,  X,   X, X,   X,   X, X, X, X,   X,   Q, X, X, X),
    "Suspended":         (X, X,   X,  X,   X, X,   X,   C, F, X, X,   Q,   X, X, X, X),
    "Queued(mirror)":    (X, X,   X,  X,   X, X,   X,   C, F, F, SUS, X,   X, Q, Q, OK),
}
# fmt: on

EXPECTED: dict[tuple[str, str], Any] = {
    (state, event): outcome
    for state, row in _TABLE.items()
    for event, outcome in zip(EVENTS, row, strict=True)
}
PAIRS = [(state, event) for state in STATES for event in EVENTS]
#: The spec an event is tried with, where it is not ``SPEC`` (suspend needs spec.suspend).
EVENT_SPECS: dict[str, JobSpec] = {
    "SuspendRequested": SPEC.model_copy(update={"suspend": True}),
}


def test_the_table_covers_every_phase_and_event() -> None:
    assert set(_TABLE) == set(STATES)
    assert set(EXPECTED) == set(PAIRS)
    covered = {s.phase for s in (make() for make in STATES.values()) if s is not None}
    assert covered == set(JobPhase) | {None}
    assert len(PAIRS) == len(STATES) * len(EVENTS)


@pytest.mark.parametrize(("state", "event"), PAIRS)
def test_phase_x_event(state: str, event: str) -> None:
    status, ev = STATES[state](), EVENTS[event]()
    spec = EVENT_SPECS.get(event, SPEC)
    expected = EXPECTED[(state, event)]
    if expected is InvalidTransition:
        with pytest.raises(InvalidTransition):
            transition(spec, status, ev)
    else:
        result = transition(spec, status, ev)
        assert result.phase == expected
        assert result is not status


@pytest.mark.parametrize(("state", "event"), PAIRS)
def test_input_is_never_mutated_and_output_is_deterministic(state: str, event: str) -> None:
    status, ev = STATES[state](), EVENTS[event]()
    spec = make_spec(jitter=0.1).model_copy(update={"suspend": event == "SuspendRequested"})
    status_before = status.model_copy(deep=True) if status else None
    dump_before = status.model_dump() if status else None
    spec_before = spec.model_dump()
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(transition(spec, status, ev))
        except InvalidTransition as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]
    assert spec.model_dump() == spec_before
    if status is not None:
        assert status == status_before
        assert status.model_dump() == dump_before
        result = outcomes[0]
        if isinstance(result, JobStatus):
            # The result shares no mutable state with the input.
            assert result is not status
            assert result.attempts is not status.attempts
            for record in result.attempts:
                record.message = "changed"
            result.attempts.append(AttemptRecord(attempt=999))
            assert status == status_before


@pytest.mark.parametrize(("state", "event"), [p for p in PAIRS if EXPECTED[p] is not X])
def test_every_result_is_a_valid_status(state: str, event: str) -> None:
    result = transition(EVENT_SPECS.get(event, SPEC), STATES[state](), EVENTS[event]())
    assert JobStatus.model_validate(result.model_dump()) == result
    assert result.completion_time is None or result.phase.is_terminal
    if result.phase.is_terminal:
        assert result.completion_time == NOW
        assert result.next_attempt_at is None


# -- claimable ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, True),
        (JobStatus(), True),
        (JobStatus(phase=JobPhase.PENDING), True),
        (JobStatus(phase=JobPhase.QUEUED), True),
        (running(), False),
        (retrying(None), True),
        (retrying(NOW - timedelta(seconds=1)), True),
        (retrying(NOW), True),
        (retrying(NOW + timedelta(microseconds=1)), False),
        (retrying(NOW + timedelta(hours=1)), False),
        (finished(JobPhase.SUCCEEDED), False),
        (finished(JobPhase.FAILED), False),
        (finished(JobPhase.CANCELLED), False),
    ],
    ids=[
        "no-status",
        "phase-none",
        "pending",
        "queued",
        "running",
        "retrying-no-time",
        "retrying-past",
        "retrying-exactly-now",
        "retrying-1us-ahead",
        "retrying-1h-ahead",
        "succeeded",
        "failed",
        "cancelled",
    ],
)
def test_claimable(status: JobStatus | None, expected: bool) -> None:
    assert claimable(status, NOW) is expected


# -- deadlines ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "status", "expected"),
    [
        (3600, None, None),
        (3600, JobStatus(phase=JobPhase.QUEUED), None),
        (None, running(), None),
        (3600, running(), t(3600)),
        (3600, running(attempt=2, started=t(500)), t(3600)),
        (1, running(), t(1)),
    ],
    ids=["no-status", "never-started", "no-deadline", "first-start", "later-attempt", "1s"],
)
def test_active_deadline(
    deadline: int | None, status: JobStatus | None, expected: datetime | None
) -> None:
    spec = make_spec(timeout=None, deadline=deadline)
    assert active_deadline(spec, status) == expected


@pytest.mark.parametrize(
    ("timeout", "deadline", "status", "expected"),
    [
        (None, None, running(), None),
        (60, None, running(started=t(100)), t(160)),
        (None, 3600, running(started=t(100)), t(3600)),
        (60, 3600, running(started=t(100)), t(160)),
        (60, 3600, running(started=t(3590)), t(3600)),
        (60, 3600, running(started=t(3540)), t(3600)),
        (60, None, JobStatus(phase=JobPhase.QUEUED), None),
        (60, 3600, JobStatus(phase=JobPhase.QUEUED), None),
        (60, 3600, JobStatus(phase=JobPhase.RUNNING, start_time=T0), t(3600)),
    ],
    ids=[
        "neither",
        "timeout-only",
        "deadline-only",
        "timeout-first",
        "deadline-first",
        "tie",
        "not-started",
        "not-started-with-deadline",
        "no-attempt-start",
    ],
)
def test_attempt_deadline(
    timeout: int | None,
    deadline: int | None,
    status: JobStatus,
    expected: datetime | None,
) -> None:
    spec = make_spec(timeout=timeout, deadline=deadline)
    assert attempt_deadline(spec, status) == expected


# -- retry_delay --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("initial", "factor", "max_delay", "attempt", "expected"),
    [
        (10, 2.0, 300, 1, 10.0),
        (10, 2.0, 300, 2, 20.0),
        (10, 2.0, 300, 3, 40.0),
        (10, 2.0, 300, 5, 160.0),
        (10, 2.0, 300, 6, 300.0),  # 320 capped
        (10, 2.0, 300, 50, 300.0),
        (10, 2.0, 300, 99, 300.0),
        (10, 1.0, 300, 1, 10.0),  # factor 1: constant
        (10, 1.0, 300, 40, 10.0),
        (5, 3.0, 100, 1, 5.0),
        (5, 3.0, 100, 2, 15.0),
        (5, 3.0, 100, 3, 45.0),
        (5, 3.0, 100, 4, 100.0),  # 135 capped
        (0, 2.0, 300, 7, 0.0),  # no delay at all
        (10, 10.0, 10, 3, 10.0),  # cap == initial
        (1, 100.0, 86400, 99, 86400.0),  # huge exponent, capped
        (1, 1.5, 300, 2, 1.5),  # fractional delays survive
    ],
)
def test_retry_delay_backoff(
    initial: int, factor: float, max_delay: int, attempt: int, expected: float
) -> None:
    spec = make_spec(max_attempts=100, initial=initial, factor=factor, max_delay=max_delay)
    assert retry_delay(spec.retry, attempt, "ValueError", True) == expected


@pytest.mark.parametrize(
    ("jitter", "sample", "attempt", "expected"),
    [
        (0.1, -1.0, 1, 9.0),
        (0.1, 0.0, 1, 10.0),
        (0.1, 1.0, 1, 11.0),
        (0.1, 0.5, 1, 10.5),
        (0.1, -0.5, 2, 19.0),
        (0.1, -7.0, 1, 9.0),  # samples are clamped to [-1, 1]
        (0.1, 7.0, 1, 11.0),
        (0.0, 1.0, 1, 10.0),  # no jitter configured: the sample is ignored
        (0.0, -1.0, 3, 40.0),
        (1.0, -1.0, 1, 0.0),  # full jitter can reach zero, never below
        (1.0, 1.0, 1, 20.0),
        (0.5, 1.0, 2, 30.0),
        (0.1, 1.0, 6, 330.0),  # the cap applies before the spread (Backoff docstring)
        (0.1, -1.0, 6, 270.0),
    ],
)
def test_retry_delay_jitter(jitter: float, sample: float, attempt: int, expected: float) -> None:
    spec = make_spec(max_attempts=100, jitter=jitter)
    delay = retry_delay(spec.retry, attempt, "ValueError", True, jitter_sample=sample)
    assert delay == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("retry_after", "sample", "attempt", "expected"),
    [
        (None, 0.0, 1, 10.0),
        (45.0, 0.0, 1, 45.0),  # larger than the backoff: honoured
        (5.0, 0.0, 1, 10.0),  # smaller: the backoff wins
        (10.0, 0.0, 1, 10.0),
        (0.0, 0.0, 1, 10.0),
        (10.5, -1.0, 1, 10.5),  # larger than the jittered backoff (9.0)
        (10.5, 1.0, 1, 11.0),  # smaller than the jittered backoff (11.0)
        (1000.0, 0.0, 6, 1000.0),  # retry-after may exceed the backoff cap
        (86400.0, 1.0, 1, 86400.0),
        (2.5, 0.0, 1, 10.0),
    ],
)
def test_retry_delay_retry_after(
    retry_after: float | None, sample: float, attempt: int, expected: float
) -> None:
    spec = make_spec(max_attempts=100, jitter=0.1)
    delay = retry_delay(spec.retry, attempt, "ValueError", True, retry_after, sample)
    assert delay == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("max_attempts", "attempt", "error_type", "retryable", "non_retryable", "expected"),
    [
        (3, 1, "ValueError", True, [], 10.0),
        (3, 2, "ValueError", True, [], 20.0),
        (3, 3, "ValueError", True, [], None),  # no attempts left
        (3, 4, "ValueError", True, [], None),
        (1, 1, "ValueError", True, [], None),  # maxAttempts 1: never retry
        (3, 1, "ValueError", False, [], None),  # the worker said not retryable
        (3, 1, "ValueError", True, ["ValueError"], None),  # listed in nonRetryableErrors
        (3, 1, "KeyError", True, ["ValueError"], 10.0),  # listed names match exactly
        (3, 1, "valueerror", True, ["ValueError"], 10.0),
        (3, 1, "acme.errors.BadInput", True, ["acme.errors.BadInput"], None),
        (3, 1, "LeaseExpired", True, ["LeaseExpired"], None),
        (3, 1, "TimedOut", True, ["TimedOut", "ValueError"], None),
    ],
)
def test_retry_delay_gives_up(
    max_attempts: int,
    attempt: int,
    error_type: str,
    retryable: bool,
    non_retryable: list[str],
    expected: float | None,
) -> None:
    spec = make_spec(max_attempts=max_attempts, non_retryable=non_retryable)
    assert retry_delay(spec.retry, attempt, error_type, retryable, retry_after=500.0) == (
        None if expected is None else 500.0
    )
    assert retry_delay(spec.retry, attempt, error_type, retryable) == expected


# -- Enqueued -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["no status", "phase None", "Pending"])
@pytest.mark.parametrize(
    ("message", "expected"),
    [("", "waiting for a worker"), ("no worker has it", "no worker has it")],
)
def test_enqueued(state: str, message: str, expected: str) -> None:
    result = transition(SPEC, STATES[state](), Enqueued(at=NOW, message=message))
    assert result.phase == JobPhase.QUEUED
    assert result.message == expected
    assert result.attempt == 0
    assert result.start_time is None
    assert result.completion_time is None
    assert result.attempts == []


# -- Claimed ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["no status", "phase None", "Pending", "Queued"])
def test_first_claim(state: str) -> None:
    result = transition(SPEC, STATES[state](), Claimed(worker="w-7", at=NOW))
    assert result.phase == JobPhase.RUNNING
    assert result.attempt == 1
    assert result.worker == "w-7"
    assert result.attempt_start_time == NOW
    assert result.start_time == NOW
    assert result.next_attempt_at is None
    assert result.progress is None
    assert result.completion_time is None
    assert result.attempts == []
    assert result.message == "attempt 1 running on w-7"


@pytest.mark.parametrize(
    "next_attempt_at",
    [None, NOW - timedelta(seconds=30), NOW],
    ids=["unset", "past", "exactly-now"],
)
def test_reclaim_after_retry_keeps_first_start_time(next_attempt_at: datetime | None) -> None:
    status = retrying(next_attempt_at)
    status.progress = JobProgress(percent=90, message="old")
    result = transition(SPEC, status, Claimed(worker="w-2", at=NOW))
    assert result.phase == JobPhase.RUNNING
    assert result.attempt == 2
    assert result.worker == "w-2"
    assert result.attempt_start_time == NOW
    assert result.start_time == T0  # from the first attempt
    assert result.next_attempt_at is None
    assert result.progress is None
    assert result.attempts == status.attempts  # the history is untouched by a claim
    assert result.message == "attempt 2 running on w-2"


def test_claim_before_next_attempt_at_is_refused() -> None:
    status = retrying(NOW + timedelta(seconds=5))
    with pytest.raises(InvalidTransition):
        transition(SPEC, status, Claimed(worker="w-2", at=NOW))
    result = transition(SPEC, status, Claimed(worker="w-2", at=NOW + timedelta(seconds=5)))
    assert result.phase == JobPhase.RUNNING


# -- Completed ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "result_value",
    [{"ok": True, "rows": [1, 2, 3]}, [1, "two"], "done", 42, None],
    ids=["object", "list", "string", "number", "null"],
)
def test_completed(result_value: Any) -> None:
    status = running(attempt=2, worker="w-9", started=t(40))
    status.error = JobError(type="ValueError", message="from before")
    result = transition(SPEC, status, Completed(result=result_value, at=NOW))
    assert result.phase == JobPhase.SUCCEEDED
    assert result.result == result_value
    assert result.error is None
    assert result.completion_time == NOW
    assert result.duration == "1m40s"  # from the first start (T0), not this attempt's
    assert result.next_attempt_at is None
    assert result.attempt == 2
    assert result.message == "succeeded on attempt 2"
    assert len(result.attempts) == 2
    assert result.attempts[0] == status.attempts[0]
    assert result.attempts[-1] == AttemptRecord(
        attempt=2,
        worker="w-9",
        start_time=t(40),
        end_time=NOW,
        outcome=AttemptOutcome.SUCCEEDED,
        error_type=None,
        message=None,
    )


@pytest.mark.parametrize(
    ("seconds", "duration"),
    [(0.25, "250ms"), (3.2, "3.2s"), (59, "59s"), (245, "4m5s"), (7380, "2h3m")],
)
def test_completed_duration(seconds: float, duration: str) -> None:
    result = transition(SPEC, running(), Completed(result=None, at=t(seconds)))
    assert result.duration == duration


# -- AttemptFailed, LeaseExpired, TimedOut: retried ---------------------------------------


@pytest.mark.parametrize(
    ("attempt", "initial", "factor", "max_delay", "jitter", "sample", "retry_after", "delay"),
    [
        (1, 10, 2.0, 300, 0.0, 0.0, None, 10.0),
        (2, 10, 2.0, 300, 0.0, 0.0, None, 20.0),
        (4, 10, 2.0, 300, 0.0, 0.0, None, 80.0),
        (6, 10, 2.0, 300, 0.0, 0.0, None, 300.0),  # 320, capped
        (9, 10, 2.0, 300, 0.0, 0.0, None, 300.0),
        (3, 10, 1.0, 300, 0.0, 0.0, None, 10.0),
        (1, 0, 2.0, 300, 0.0, 0.0, None, 0.0),
        (1, 10, 2.0, 300, 0.1, -1.0, None, 9.0),
        (1, 10, 2.0, 300, 0.1, 0.0, None, 10.0),
        (1, 10, 2.0, 300, 0.1, 1.0, None, 11.0),
        (2, 10, 2.0, 300, 0.25, -1.0, None, 15.0),
        (2, 10, 2.0, 300, 0.25, 1.0, None, 25.0),
        (1, 10, 2.0, 300, 0.1, 0.0, 45.0, 45.0),  # retry-after beats the backoff
        (1, 10, 2.0, 300, 0.1, 1.0, 3.0, 11.0),  # backoff beats a short retry-after
        (6, 10, 2.0, 300, 0.0, 0.0, 900.0, 900.0),  # retry-after beyond the cap
        (1, 10, 2.0, 300, 0.0, 0.0, 0.5, 10.0),
    ],
)
def test_attempt_failed_retries_after_the_backoff(
    attempt: int,
    initial: int,
    factor: float,
    max_delay: int,
    jitter: float,
    sample: float,
    retry_after: float | None,
    delay: float,
) -> None:
    spec = make_spec(
        max_attempts=10, initial=initial, factor=factor, max_delay=max_delay, jitter=jitter
    )
    status = running(attempt=attempt, worker="w-3", started=t(60))
    event = AttemptFailed(
        "ValueError", "boom", True, NOW, retry_after=retry_after, jitter_sample=sample
    )
    result = transition(spec, status, event)
    assert result.phase == JobPhase.RETRYING
    assert result.next_attempt_at == NOW + timedelta(seconds=delay)
    assert result.attempt == attempt
    assert result.worker is None
    assert result.start_time == T0
    assert result.completion_time is None
    assert result.duration is None
    assert result.result is None
    assert len(result.attempts) == attempt
    assert result.attempts[-1] == AttemptRecord(
        attempt=attempt,
        worker="w-3",
        start_time=t(60),
        end_time=NOW,
        outcome=AttemptOutcome.FAILED,
        error_type="ValueError",
        message="boom",
    )
    next_at = f"{NOW + timedelta(seconds=delay):%H:%M:%S}Z"
    assert result.message == f"attempt {attempt} failed (ValueError); next attempt at {next_at}"


def test_retrying_message_names_the_time_of_the_next_attempt() -> None:
    # An absolute time stays true while nothing is written; "retrying in 10s" would not.
    result = transition(SPEC, running(), AttemptFailed("ValueError", "boom", True, NOW))
    assert result.message == "attempt 1 failed (ValueError); next attempt at 12:01:50Z"
    result = transition(SPEC, running(attempt=2), AttemptFailed("IOError", "x", True, NOW))
    assert result.message == "attempt 2 failed (IOError); next attempt at 12:02:00Z"
    # A fraction of a second is rounded up: the attempt never comes before the time said.
    late = NOW + timedelta(milliseconds=300)
    result = transition(SPEC, running(), AttemptFailed("ValueError", "boom", True, late))
    assert result.next_attempt_at == late + timedelta(seconds=10)
    assert result.message == "attempt 1 failed (ValueError); next attempt at 12:01:51Z"


@pytest.mark.parametrize(
    ("when", "now", "expected"),
    [
        (t(0), t(0), "12:00:00Z"),
        (t(7.000001), t(0), "12:00:08Z"),
        (t(7.999), t(0), "12:00:08Z"),
        (t(3600 * 12), t(0), "2025-03-02T00:00:00Z"),  # another day: dated
        (datetime(2025, 3, 1, 23, 59, 59, 500000, tzinfo=UTC), t(0), "2025-03-02T00:00:00Z"),
        (t(3600 * 11.9), t(0), "23:54:00Z"),
    ],
)
def test_format_instant(when: datetime, now: datetime, expected: str) -> None:
    assert format_instant(when, now) == expected


@pytest.mark.parametrize(
    ("event", "outcome", "error_type", "message"),
    [
        (
            LeaseExpired(at=NOW, jitter_sample=1.0),
            AttemptOutcome.LEASE_EXPIRED,
            "LeaseExpired",
            "worker w-1 stopped heartbeating; its lease expired",
        ),
        (
            TimedOut(at=NOW, jitter_sample=1.0),
            AttemptOutcome.TIMED_OUT,
            "TimedOut",
            "attempt ran longer than timeoutSeconds=60",
        ),
        (
            AttemptFailed("RuntimeError", "kaput", True, NOW, jitter_sample=1.0),
            AttemptOutcome.FAILED,
            "RuntimeError",
            "kaput",
        ),
    ],
    ids=["lease-expired", "timed-out", "failed"],
)
def test_lost_attempts_follow_the_retry_policy(
    event: Any, outcome: AttemptOutcome, error_type: str, message: str
) -> None:
    spec = make_spec(jitter=0.1)
    # Retried while attempts are left (with the event's jitter sample applied)...
    result = transition(spec, running(attempt=2), event)
    assert result.phase == JobPhase.RETRYING
    assert result.next_attempt_at == NOW + timedelta(seconds=22)  # 20s * 1.1
    assert result.worker is None
    record = result.attempts[-1]
    assert (record.attempt, record.worker, record.outcome) == (2, "w-1", outcome)
    assert (record.error_type, record.message) == (error_type, message)
    assert (record.start_time, record.end_time) == (T0, NOW)
    assert result.message == f"attempt 2 failed ({error_type}); next attempt at 12:02:02Z"

    # ...and the job fails on the last one, the error kept.
    result = transition(spec, running(attempt=3), event)
    assert result.phase == JobPhase.FAILED
    assert result.error == JobError(type=error_type, message=message, retryable=True)
    assert result.attempts[-1].outcome == outcome
    assert result.message == f"failed: {error_type}: {message} (no attempts left (3/3))"
    assert result.completion_time == NOW
    assert result.next_attempt_at is None
    assert result.duration == "1m40s"


# -- failures that end the job ------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_attempts", "attempt"), [(1, 1), (3, 3), (5, 5), (3, 4)], ids=["1/1", "3/3", "5/5", "4/3"]
)
def test_attempt_failed_at_max_attempts_fails(max_attempts: int, attempt: int) -> None:
    spec = make_spec(max_attempts=max_attempts)
    event = AttemptFailed("ValueError", "bad value", True, NOW, retry_after=5.0)
    result = transition(spec, running(attempt=attempt, worker="w-4", started=t(70)), event)
    assert result.phase == JobPhase.FAILED
    assert result.error == JobError(type="ValueError", message="bad value", retryable=True)
    assert result.message == (
        f"failed: ValueError: bad value (no attempts left ({attempt}/{max_attempts}))"
    )
    assert "no attempts left" in result.message
    assert result.completion_time == NOW
    assert result.duration == "1m40s"
    assert result.next_attempt_at is None
    assert result.attempt == attempt
    assert result.attempts[-1] == AttemptRecord(
        attempt=attempt,
        worker="w-4",
        start_time=t(70),
        end_time=NOW,
        outcome=AttemptOutcome.FAILED,
        error_type="ValueError",
        message="bad value",
    )


@pytest.mark.parametrize("attempt", [1, 2, 3])
@pytest.mark.parametrize("retry_after", [None, 30.0])
def test_non_retryable_error_fails_at_once(attempt: int, retry_after: float | None) -> None:
    event = AttemptFailed("FatalError", "never again", False, NOW, retry_after=retry_after)
    result = transition(SPEC, running(attempt=attempt), event)
    assert result.phase == JobPhase.FAILED
    assert result.error == JobError(type="FatalError", message="never again", retryable=False)
    assert result.message == "failed: FatalError: never again (not retryable)"
    assert result.completion_time == NOW
    assert result.next_attempt_at is None
    assert result.attempts[-1].outcome == AttemptOutcome.FAILED
    assert result.attempts[-1].error_type == "FatalError"


@pytest.mark.parametrize(
    ("event", "error_type", "outcome"),
    [
        (AttemptFailed("acme.BadInput", "bad", True, NOW), "acme.BadInput", AttemptOutcome.FAILED),
        (LeaseExpired(at=NOW), "LeaseExpired", AttemptOutcome.LEASE_EXPIRED),
        (TimedOut(at=NOW), "TimedOut", AttemptOutcome.TIMED_OUT),
    ],
    ids=["failed", "lease-expired", "timed-out"],
)
def test_error_listed_in_non_retryable_errors_fails_at_once(
    event: Any, error_type: str, outcome: AttemptOutcome
) -> None:
    spec = make_spec(max_attempts=5, non_retryable=["Other", error_type])
    result = transition(spec, running(attempt=1), event)
    assert result.phase == JobPhase.FAILED
    assert result.error is not None
    assert result.error.type == error_type
    assert result.message is not None
    assert result.message.startswith(f"failed: {error_type}: ")
    assert result.message.endswith("(not retryable)")
    assert result.attempts[-1].outcome == outcome
    assert result.completion_time == NOW


def test_error_listed_in_non_retryable_errors_is_recorded_as_not_retryable() -> None:
    spec = make_spec(max_attempts=5, non_retryable=["acme.BadInput"])
    event = AttemptFailed("acme.BadInput", "bad", True, NOW)
    result = transition(spec, running(attempt=1), event)
    assert result.phase == JobPhase.FAILED
    assert result.message == "failed: acme.BadInput: bad (not retryable)"
    # JobError.retryable: "false for non-retryable errors".
    assert result.error == JobError(type="acme.BadInput", message="bad", retryable=False)


@pytest.mark.parametrize(
    "event",
    [
        AttemptDisrupted("pod deleted (rollout)", NOW, "PodDeleted"),
        AttemptFailed("WorkerShutdown", "SIGTERM", True, NOW),  # an older runtime's hand-back
    ],
    ids=["disrupted", "worker-shutdown"],
)
def test_disruption_queues_again_without_counting(event: Any) -> None:
    # The last attempt allowed is disrupted: the job is queued again, not failed.
    spec = make_spec(max_attempts=3)
    result = transition(spec, running(attempt=3), event)
    assert result.phase == JobPhase.QUEUED
    assert claimable(result, NOW)
    assert result.counted_attempts == 2
    assert (result.worker, result.progress, result.next_attempt_at) == (None, None, None)
    record = result.attempts[-1]
    assert (record.attempt, record.outcome, record.end_time) == (3, AttemptOutcome.DISRUPTED, NOW)
    assert record.error_type == event.error_type
    assert result.message is not None and "not counted" in result.message
    # The next attempt is number 4 and may still fail into a retry... until 3 counted.
    again = transition(spec, result, Claimed("w-2", NOW))
    assert again.attempt == 4
    failed = transition(spec, again, AttemptFailed("ValueError", "x", True, NOW))
    assert (failed.phase, failed.counted_attempts) == (JobPhase.FAILED, 3)
    assert failed.message is not None and "(3/3)" in failed.message


def test_only_the_exact_handback_error_type_is_a_disruption() -> None:
    event = AttemptFailed("WorkerShutdownError", "SIGTERM", True, NOW)
    result = transition(SPEC, running(), event)
    assert result.attempts[-1].outcome == AttemptOutcome.FAILED
    assert result.counted_attempts == 1


@pytest.mark.parametrize("state", ["Pending", "Queued", "Retrying(due)", "Succeeded"])
def test_disruption_only_applies_to_a_running_attempt(state: str) -> None:
    with pytest.raises(InvalidTransition):
        transition(SPEC, STATES[state](), AttemptDisrupted("x", NOW))


def test_every_outcome_but_disrupted_counts() -> None:
    assert [o for o in AttemptOutcome if not o.counts] == [AttemptOutcome.DISRUPTED]
    assert transition(SPEC, running(), Completed({}, NOW)).counted_attempts == 1
    assert transition(SPEC, running(), CancelRequested(NOW)).counted_attempts == 1


# -- stopping a running attempt ------------------------------------------------------------


def test_stop_reason_order_cancel_then_deadline_then_timeout() -> None:
    spec = make_spec(timeout=60, deadline=120)
    status = running(started=t(0))
    assert stop_reason(spec, status, t(59)) is None
    timeout = stop_reason(spec, status, t(60))
    assert timeout == StopReason(StopKind.TIMEOUT, "the attempt ran longer than timeoutSeconds=60")
    late = running(started=t(90))  # a later attempt: the job's deadline comes first
    deadline = stop_reason(spec, late, t(120))
    assert deadline is not None and deadline.kind is StopKind.DEADLINE
    cancelled = spec.model_copy(update={"cancel": True})
    reason = stop_reason(cancelled, late, t(1))
    assert reason is not None and reason.kind is StopKind.CANCEL
    assert stop_reason(cancelled, STATES["Queued"](), t(1)) is None  # not running


@pytest.mark.parametrize(
    ("kind", "phase", "outcome"),
    [
        (StopKind.CANCEL, JobPhase.CANCELLED, AttemptOutcome.CANCELLED),
        (StopKind.DEADLINE, JobPhase.FAILED, AttemptOutcome.TIMED_OUT),
        (StopKind.TIMEOUT, JobPhase.RETRYING, AttemptOutcome.TIMED_OUT),
    ],
)
def test_fence_event_ends_the_attempt_for_its_reason(
    kind: StopKind, phase: JobPhase, outcome: AttemptOutcome
) -> None:
    spec = make_spec(timeout=60, deadline=600)
    result = transition(spec, running(), fence_event(kind, NOW))
    assert (result.phase, result.attempts[-1].outcome) == (phase, outcome)


def test_long_failure_message_is_bounded() -> None:
    event = AttemptFailed("ValueError", "x" * 4096, True, NOW)
    for attempt in (1, 3):
        result = transition(SPEC, running(attempt=attempt), event)
        assert result.message is not None
        assert len(result.message) <= 1024
        assert JobStatus.model_validate(result.model_dump()) == result
    assert result.error is not None
    assert result.error.message == "x" * 4096


# -- CancelRequested ----------------------------------------------------------------------

NON_TERMINAL = [s for s in STATES if s not in ("Succeeded", "Failed", "Cancelled")]


@pytest.mark.parametrize("state", NON_TERMINAL)
def test_cancel_from_every_non_terminal_phase(state: str) -> None:
    status = STATES[state]()
    result = transition(SPEC, status, CancelRequested(at=NOW))
    assert result.phase == JobPhase.CANCELLED
    assert result.completion_time == NOW
    assert result.next_attempt_at is None
    assert result.message == "cancelled by spec.cancel"
    assert result.error is None
    before = status.attempts if status else []
    if state == "Running":
        assert result.attempts[:-1] == before
        assert result.attempts[-1] == AttemptRecord(
            attempt=1,
            worker="w-1",
            start_time=T0,
            end_time=NOW,
            outcome=AttemptOutcome.CANCELLED,
            error_type=None,
            message="cancelled",
        )
    else:
        assert result.attempts == before
    started = status is not None and status.start_time is not None
    assert result.duration == ("1m40s" if started else None)


def test_cancel_while_running_a_later_attempt_records_that_attempt() -> None:
    result = transition(SPEC, running(attempt=3, worker="w-5"), CancelRequested(at=NOW))
    assert [a.attempt for a in result.attempts] == [1, 2, 3]
    assert result.attempts[-1].outcome == AttemptOutcome.CANCELLED
    assert result.attempts[-1].worker == "w-5"


# -- DeadlineExceeded ---------------------------------------------------------------------


@pytest.mark.parametrize("state", NON_TERMINAL)
def test_deadline_exceeded_fails_from_every_non_terminal_phase(state: str) -> None:
    status = STATES[state]()
    result = transition(SPEC, status, DeadlineExceeded(at=NOW))
    message = "exceeded activeDeadlineSeconds=3600"
    assert result.phase == JobPhase.FAILED
    assert result.error == JobError(type="DeadlineExceeded", message=message, retryable=False)
    assert result.message == message
    assert result.completion_time == NOW
    assert result.next_attempt_at is None
    before = status.attempts if status else []
    if state == "Running":
        assert result.attempts[-1] == AttemptRecord(
            attempt=1,
            worker="w-1",
            start_time=T0,
            end_time=NOW,
            outcome=AttemptOutcome.TIMED_OUT,
            error_type="DeadlineExceeded",
            message=message,
        )
    else:
        assert result.attempts == before


def test_deadline_exceeded_is_final_even_with_attempts_left() -> None:
    spec = make_spec(max_attempts=100)
    result = transition(spec, running(attempt=1), DeadlineExceeded(at=NOW))
    assert result.phase == JobPhase.FAILED
    assert result.error is not None
    assert result.error.retryable is False


# -- ParamsRejected -----------------------------------------------------------------------

WAITING_STATES = ["no status", "phase None", "Pending", "Queued", "Retrying(due)"]


@pytest.mark.parametrize("state", [*WAITING_STATES, "Retrying(not due)"])
def test_params_rejected(state: str) -> None:
    status = STATES[state]()
    result = transition(SPEC, status, ParamsRejected(message="size: must be <= 2", at=NOW))
    assert result.phase == JobPhase.FAILED
    assert result.error == JobError(
        type="InvalidParams", message="size: must be <= 2", retryable=False
    )
    assert result.message == "params rejected: size: must be <= 2"
    assert result.completion_time == NOW
    assert result.next_attempt_at is None
    assert result.attempts == (status.attempts if status else [])


def test_params_rejected_while_running_is_refused() -> None:
    with pytest.raises(InvalidTransition):
        transition(SPEC, running(), ParamsRejected(message="bad", at=NOW))


def test_params_rejected_long_message_keeps_status_message_bounded() -> None:
    long = "params.items[0]: " + "y" * 3000
    result = transition(SPEC, JobStatus(phase=JobPhase.QUEUED), ParamsRejected(long, NOW))
    assert result.phase == JobPhase.FAILED
    assert result.message is not None
    assert result.message.startswith("params rejected: params.items[0]: yyy")
    assert len(result.message) <= 1024  # JobStatus.message maxLength
    assert result.error is not None
    assert result.error.message == long
    assert JobStatus.model_validate(result.model_dump()) == result


# -- bounded history ----------------------------------------------------------------------


def test_attempt_history_is_bounded() -> None:
    total = MAX_ATTEMPT_HISTORY + 7
    spec = make_spec(max_attempts=total, initial=0, max_delay=0)
    status: JobStatus | None = None
    clock = T0
    for n in range(1, total + 1):
        status = transition(spec, status, Claimed(worker=f"w-{n}", at=clock))
        assert status.attempt == n
        clock += timedelta(seconds=1)
        status = transition(spec, status, AttemptFailed("IOError", f"fail {n}", True, clock))
        assert len(status.attempts) == min(n, MAX_ATTEMPT_HISTORY)
        assert status.attempts[-1].attempt == n
        assert status.attempts[-1].message == f"fail {n}"
        assert JobStatus.model_validate(status.model_dump()) == status
        if n < total:
            assert status.phase == JobPhase.RETRYING
            assert status.next_attempt_at == clock
    assert status is not None
    assert status.phase == JobPhase.FAILED
    assert status.message is not None
    assert f"no attempts left ({total}/{total})" in status.message
    assert [a.attempt for a in status.attempts] == list(range(8, total + 1))
    assert [a.worker for a in status.attempts] == [f"w-{n}" for n in range(8, total + 1)]
    assert status.start_time == T0


# -- whole paths --------------------------------------------------------------------------


def test_happy_path() -> None:
    spec = make_spec()
    status = transition(spec, None, Enqueued(at=T0))
    assert status.phase == JobPhase.QUEUED
    assert claimable(status, T0)

    status = transition(spec, status, Claimed(worker="w-1", at=t(2)))
    assert status.phase == JobPhase.RUNNING
    assert (status.attempt, status.worker, status.start_time) == (1, "w-1", t(2))
    assert not claimable(status, t(2))
    assert attempt_deadline(spec, status) == t(62)
    assert active_deadline(spec, status) == t(3602)

    status = transition(spec, status, Completed(result={"width": 3}, at=t(5.5)))
    assert status.phase == JobPhase.SUCCEEDED
    assert status.result == {"width": 3}
    assert status.duration == "3.5s"
    assert status.completion_time == t(5.5)
    assert status.error is None
    assert status.attempts == [
        AttemptRecord(
            attempt=1,
            worker="w-1",
            start_time=t(2),
            end_time=t(5.5),
            outcome=AttemptOutcome.SUCCEEDED,
        )
    ]
    for name, make in EVENTS.items():
        if name == "RerunRequested":  # the one way out of a finished run: a new run
            continue
        with pytest.raises(InvalidTransition):
            transition(spec, status, make())


def test_fail_fail_succeed_path() -> None:
    spec = make_spec(max_attempts=3, initial=10, factor=2, jitter=0.1)
    status = transition(spec, JobStatus(phase=JobPhase.PENDING), Enqueued(at=T0))
    status = transition(spec, status, Claimed(worker="w-1", at=T0))

    # Attempt 1 fails: retry in 10s (no jitter drawn).
    event = AttemptFailed("ConnectionError", "reset", True, t(5), jitter_sample=0.0)
    status = transition(spec, status, event)
    assert status.phase == JobPhase.RETRYING
    assert status.next_attempt_at == t(15)
    with pytest.raises(InvalidTransition):
        transition(spec, status, Claimed(worker="w-2", at=t(14)))
    with pytest.raises(InvalidTransition):
        transition(spec, status, Completed(result=1, at=t(14)))  # a stale report

    # Attempt 2 loses its worker: retry in 20s * 1.1.
    status = transition(spec, status, Claimed(worker="w-2", at=t(15)))
    assert (status.attempt, status.start_time, status.attempt_start_time) == (2, T0, t(15))
    status = transition(spec, status, LeaseExpired(at=t(20), jitter_sample=1.0))
    assert status.phase == JobPhase.RETRYING
    assert status.next_attempt_at == t(42)

    # Attempt 3 succeeds.
    status = transition(spec, status, Claimed(worker="w-3", at=t(42)))
    assert status.attempt == 3
    status = transition(spec, status, Completed(result="ok", at=t(50)))
    assert status.phase == JobPhase.SUCCEEDED
    assert status.result == "ok"
    assert status.duration == "50s"
    assert status.start_time == T0
    assert status.completion_time == t(50)
    assert status.message == "succeeded on attempt 3"
    assert [(a.attempt, a.worker, a.outcome, a.error_type) for a in status.attempts] == [
        (1, "w-1", AttemptOutcome.FAILED, "ConnectionError"),
        (2, "w-2", AttemptOutcome.LEASE_EXPIRED, "LeaseExpired"),
        (3, "w-3", AttemptOutcome.SUCCEEDED, None),
    ]
    assert [(a.start_time, a.end_time) for a in status.attempts] == [
        (T0, t(5)),
        (t(15), t(20)),
        (t(42), t(50)),
    ]


def test_fail_fail_fail_path_ends_failed() -> None:
    spec = make_spec(max_attempts=3, initial=10, factor=2, jitter=0.0)
    status = transition(spec, None, Claimed(worker="w-1", at=T0))
    status = transition(spec, status, TimedOut(at=t(60)))
    assert status.next_attempt_at == t(70)
    status = transition(spec, status, Claimed(worker="w-2", at=t(70)))
    status = transition(spec, status, AttemptFailed("ValueError", "v", True, t(80)))
    assert status.next_attempt_at == t(100)
    status = transition(spec, status, Claimed(worker="w-3", at=t(100)))
    status = transition(spec, status, AttemptFailed("ValueError", "v3", True, t(130)))
    assert status.phase == JobPhase.FAILED
    assert status.error == JobError(type="ValueError", message="v3", retryable=True)
    assert status.duration == "2m10s"
    assert [a.outcome for a in status.attempts] == [
        AttemptOutcome.TIMED_OUT,
        AttemptOutcome.FAILED,
        AttemptOutcome.FAILED,
    ]
