"""``spec.retry.rules`` in the state machine: every rule action x failure event, order,
first match, no match (the defaults, unchanged), countsAttempt and its hard bound,
RetryableError(after=...) with a rule, and the messages that name the deciding rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shiftboss.api.job import JobPhase, JobProgress, JobSpec, JobStatus
from shiftboss.api.retry import MAX_UNCOUNTED_ATTEMPT_NUMBER, FailureReason
from shiftboss.jobs.machine import (
    AttemptDisrupted,
    AttemptFailed,
    Event,
    LeaseExpired,
    ParamsRejected,
    TimedOut,
    transition,
)
from shiftboss.jobs.retryrules import Failure, first_match, matches

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=100)


def spec(*rules: dict[str, Any], max_attempts: int = 3, **retry: Any) -> JobSpec:
    """A job (backoff 10 s doubling, no jitter) with ``rules``, written as in a manifest."""
    policy = {
        "maxAttempts": max_attempts,
        "backoff": {"initialDelaySeconds": 10, "jitter": 0},
        **retry,
    }
    if rules:
        policy["rules"] = list(rules)
    return JobSpec.model_validate(
        {"pool": "p", "skill": "s", "timeoutSeconds": 60, "retry": policy}
    )


def running(attempt: int = 1, counted: int | None = None) -> JobStatus:
    return JobStatus(
        phase=JobPhase.RUNNING,
        attempt=attempt,
        counted_attempts=attempt - 1 if counted is None else counted,
        worker="w-1",
        start_time=T0,
        attempt_start_time=T0,
        progress=JobProgress(percent=10),
    )


def rule(action: str = "Retry", **match: Any) -> dict[str, Any]:
    return {"match": match, "action": action}


#: Every way an attempt ends in failure, and a match that names it.
FAILURES: dict[str, tuple[Callable[[], Event], dict[str, Any]]] = {
    "RuntimeError": (
        lambda: AttemptFailed("RuntimeError", "boom", True, NOW),
        {"errorTypes": ["RuntimeError"]},
    ),
    "FatalError": (
        lambda: AttemptFailed("FatalError", "bad input", False, NOW),
        {"errorTypes": ["FatalError"]},
    ),
    "InvalidParams": (
        lambda: AttemptFailed("InvalidParams", "width: too big", False, NOW),
        {"reasons": ["ParamsInvalid"]},
    ),
    "ResultTooLarge": (
        lambda: AttemptFailed("ResultTooLarge", "40000 bytes", False, NOW),
        {"reasons": ["ResultTooLarge"]},
    ),
    "LeaseExpired": (lambda: LeaseExpired(NOW), {"reasons": ["LeaseExpired"]}),
    "TimedOut": (lambda: TimedOut(NOW), {"reasons": ["TimedOut"]}),
    "PodDeleted": (
        lambda: AttemptDisrupted("worker pod w-1 was deleted", NOW, "PodDeleted"),
        {"reasons": ["WorkerShutdown"]},
    ),
    "HandedBack(old runtime)": (
        lambda: AttemptFailed("WorkerShutdown", "worker w-1 is shutting down", True, NOW),
        {"reasons": ["WorkerShutdown"]},
    ),
}

RTY, F, Q = JobPhase.RETRYING, JobPhase.FAILED, JobPhase.QUEUED
# fmt: off
#: The phase after each failure on attempt 1 of 3: no rule, a Retry rule, a Fail rule,
#: and a rule that matches something else.
_TABLE: dict[str, tuple[JobPhase, JobPhase, JobPhase, JobPhase]] = {
    #                          none Retry Fail other
    "RuntimeError":            (RTY, RTY, F, RTY),
    "FatalError":              (F,   RTY, F, F),
    "InvalidParams":           (F,   RTY, F, F),
    "ResultTooLarge":          (F,   RTY, F, F),
    "LeaseExpired":            (RTY, RTY, F, RTY),
    "TimedOut":                (RTY, RTY, F, RTY),
    "PodDeleted":              (Q,   Q,   F, Q),
    "HandedBack(old runtime)": (Q,   Q,   F, Q),
}
# fmt: on
OTHER = rule("Fail", errorTypes=["acme.Unrelated"])


def test_the_table_covers_every_failure() -> None:
    assert set(_TABLE) == set(FAILURES)
    named = {r for _, match in FAILURES.values() for r in match.get("reasons", [])}
    assert named == set(FailureReason)


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("column", ["none", "Retry", "Fail", "other"])
def test_rule_action_x_failure(failure: str, column: str) -> None:
    make_event, match = FAILURES[failure]
    rules = {"none": (), "Retry": (rule("Retry", **match),), "Fail": (rule("Fail", **match),)}
    job = spec(*rules.get(column, (OTHER,)))
    result = transition(job, running(), make_event(), generation=1)
    index = ["none", "Retry", "Fail", "other"].index(column)
    assert result.phase == _TABLE[failure][index]
    if column == "Fail":
        assert result.error is not None and result.error.retryable is False
        assert "(rule 1 (" in (result.message or "") and "): fail)" in (result.message or "")
    if column == "Retry" and result.phase == RTY:
        assert "; rule 1 (" in (result.message or "") and "): retry; next attempt at" in (
            result.message or ""
        )


@pytest.mark.parametrize("failure", list(FAILURES))
def test_a_rule_that_does_not_match_changes_nothing(failure: str) -> None:
    make_event, _ = FAILURES[failure]
    event = make_event()
    assert transition(spec(OTHER), running(), event) == transition(spec(), running(), event)


def test_rules_are_tried_in_order_and_the_first_match_decides() -> None:
    job = spec(
        rule("Fail", errorTypes=["RuntimeError"], messagePattern="quota"),
        rule("Retry", errorTypes=["RuntimeError", "ValueError"]),
        rule("Fail", messagePattern="boom"),
    )
    quota = transition(job, running(), AttemptFailed("RuntimeError", "quota hit", True, NOW))
    assert quota.phase == F
    assert quota.message == (
        "failed: RuntimeError: quota hit (rule 1 (errorTypes: RuntimeError; "
        "messagePattern: 'quota'): fail)"
    )
    boom = transition(job, running(), AttemptFailed("RuntimeError", "boom", True, NOW))
    assert boom.phase == RTY
    assert boom.message == (
        "attempt 1 failed (RuntimeError); rule 2 (errorTypes: RuntimeError, ValueError): "
        "retry; next attempt at 12:01:50Z"
    )
    other = transition(job, running(), AttemptFailed("KeyError", "boom", True, NOW))
    assert other.phase == F and other.message is not None and "rule 3" in other.message


def test_the_message_names_the_rule_with_an_absolute_time() -> None:
    job = spec(rule("Fail", errorTypes=["X"]), rule("Retry", reasons=["TimedOut"]))
    result = transition(job, running(), TimedOut(NOW))
    assert result.message == (
        "attempt 1 failed (TimedOut); rule 2 (reasons: TimedOut): retry; next attempt at 12:01:50Z"
    )
    assert result.next_attempt_at == NOW + timedelta(seconds=10)


def test_a_counted_retry_still_stops_at_max_attempts() -> None:
    job = spec(rule("Retry", errorTypes=["FatalError"]))
    result = transition(job, running(attempt=3), AttemptFailed("FatalError", "x", False, NOW))
    assert result.phase == F
    assert result.counted_attempts == 3
    assert result.error is not None and result.error.retryable is True
    assert result.message == (
        "failed: FatalError: x (rule 1 (errorTypes: FatalError): retry, but no attempts left (3/3))"
    )


def test_an_uncounted_retry_keeps_counted_attempts_and_passes_max_attempts() -> None:
    job = spec({**rule("Retry", reasons=["TimedOut"]), "countsAttempt": False}, max_attempts=1)
    result = transition(job, running(attempt=5, counted=0), TimedOut(NOW))
    assert result.phase == RTY
    assert result.counted_attempts == 0
    assert result.attempts[-1].outcome == "TimedOut"
    assert "rule 1 (reasons: TimedOut): retry, not counted; next attempt at" in (
        result.message or ""
    )
    # The job's backoff grows with the attempt number: 10 s * 2^(5-1).
    assert result.next_attempt_at == NOW + timedelta(seconds=160)


def test_uncounted_retries_end_at_the_hard_bound() -> None:
    job = spec({**rule("Retry", reasons=["TimedOut"]), "countsAttempt": False}, max_attempts=1)
    last = MAX_UNCOUNTED_ATTEMPT_NUMBER
    assert transition(job, running(attempt=last - 1, counted=0), TimedOut(NOW)).phase == RTY
    result = transition(job, running(attempt=last, counted=0), TimedOut(NOW))
    assert result.phase == F
    assert result.counted_attempts == 0
    assert f"attempt {last} is the most a job may reach" in (result.message or "")


def test_a_rule_backoff_replaces_the_jobs() -> None:
    own = {"initialDelaySeconds": 30, "factor": 3, "maxDelaySeconds": 600, "jitter": 0}
    job = spec({**rule("Retry", errorTypes=["RuntimeError"]), "backoff": own})
    result = transition(job, running(attempt=2), AttemptFailed("RuntimeError", "x", True, NOW))
    assert result.next_attempt_at == NOW + timedelta(seconds=90)


@pytest.mark.parametrize(("after", "expected"), [(5.0, 30.0), (45.0, 45.0), (None, 30.0)])
def test_retry_after_is_a_floor_under_a_rules_backoff(after: float | None, expected: float) -> None:
    own = {"initialDelaySeconds": 30, "jitter": 0}
    job = spec({**rule("Retry", errorTypes=["Busy"]), "backoff": own})
    event = AttemptFailed("Busy", "later", True, NOW, retry_after=after)
    result = transition(job, running(), event)
    assert result.next_attempt_at == NOW + timedelta(seconds=expected)


def test_a_retry_rule_overrides_non_retryable_errors() -> None:
    job = spec(rule("Retry", errorTypes=["ValueError"]), nonRetryableErrors=["ValueError"])
    result = transition(job, running(), AttemptFailed("ValueError", "x", True, NOW))
    assert result.phase == RTY


@pytest.mark.parametrize(
    ("pattern", "message", "expected"),
    [
        ("quota", "daily quota exceeded", True),
        ("^quota", "daily quota exceeded", False),
        ("^daily .* exceeded$", "daily quota exceeded", True),
        ("(?i)QUOTA", "daily quota exceeded", True),
        ("rate limit|quota", "hit the rate limit", True),
        ("quota", "", False),
    ],
)
def test_message_pattern_is_searched(pattern: str, message: str, expected: bool) -> None:
    job = spec(rule("Fail", messagePattern=pattern))
    assert job.retry.rules is not None
    failure = Failure.reported("RuntimeError", message, True)
    assert matches(job.retry.rules[0], failure) is expected


def test_a_pattern_the_engine_refuses_matches_nothing() -> None:
    job = spec(rule("Fail", messagePattern="a(?=b)"))  # the CRD refuses it first
    assert job.retry.rules is not None
    assert not matches(job.retry.rules[0], Failure.reported("E", "ab", True))


def test_error_types_match_only_what_the_worker_reported() -> None:
    job = spec(rule("Fail", errorTypes=["TimedOut", "LeaseExpired"]))
    assert transition(job, running(), TimedOut(NOW)).phase == RTY
    assert transition(job, running(), LeaseExpired(NOW)).phase == RTY
    reported = AttemptFailed("TimedOut", "x", True, NOW)  # the operator maps it to TimedOut()
    assert transition(job, running(), reported).phase == F


def test_a_pattern_only_rule_never_matches_a_disruption() -> None:
    job = spec(rule("Fail", messagePattern="."))
    event = AttemptDisrupted("worker pod w-1 was deleted", NOW, "PodDeleted")
    result = transition(job, running(), event)
    assert result.phase == Q and result.counted_attempts == 0
    assert first_match(job.retry.rules or [], Failure("E", "x", FailureReason.TIMED_OUT))


def test_a_fail_rule_on_worker_shutdown_fails_without_counting() -> None:
    job = spec(rule("Fail", reasons=["WorkerShutdown"], messagePattern="deleted"))
    event = AttemptDisrupted("worker pod w-1 was deleted", NOW, "PodDeleted")
    result = transition(job, running(), event)
    assert result.phase == F
    assert result.counted_attempts == 0
    assert result.error is not None and result.error.type == "PodDeleted"
    assert result.message == (
        "failed: PodDeleted: worker pod w-1 was deleted (rule 1 (reasons: WorkerShutdown; "
        "messagePattern: 'deleted'): fail)"
    )


def test_params_rejected_before_an_attempt_ignores_rules() -> None:
    job = spec(rule("Retry", reasons=["ParamsInvalid"]))
    result = transition(job, JobStatus(phase=JobPhase.QUEUED), ParamsRejected("bad", NOW))
    assert result.phase == F
