"""What becomes of a job whose attempt failed: ``spec.retry.rules``, then the defaults.

Pure (no I/O, no clock), like ``shiftboss.jobs.machine``, which applies the verdict.
The rules are tried in order and the first that matches decides; a failure no rule
matches follows ``maxAttempts``, ``backoff`` and ``nonRetryableErrors`` as before rules
existed.  Message patterns run on the Rust ``regex`` engine (linear time, a bounded
compiled size), as the skills' schemas do (``shiftboss.jobs.params``), so no pattern
can stall the operator; the CRD checks their syntax (RE2) when the Job is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jsonschema_rs

from shiftboss.api.retry import (
    MAX_UNCOUNTED_ATTEMPT_NUMBER,
    Backoff,
    FailureReason,
    RetryAction,
    RetryPolicy,
    RetryRule,
)
from shiftboss.jobs.params import REGEX_SIZE_LIMIT

#: Error types the worker reports for failures that rules name by a reason.
_REASON_OF_ERROR = {
    "InvalidParams": FailureReason.PARAMS_INVALID,
    "ResultTooLarge": FailureReason.RESULT_TOO_LARGE,
}


@dataclass(frozen=True)
class Failure:
    """A failed attempt, as the rules see it."""

    #: The error type, the worker's or the operator's (LeaseExpired, TimedOut, ...).
    error_type: str
    message: str
    #: The infrastructure reason, when there is one (see ``FailureReason``).
    reason: FailureReason | None = None
    #: Whether ``error_type`` was reported by the worker (what ``match.errorTypes`` sees).
    from_worker: bool = False
    #: The worker's own verdict (false for a FatalError).
    retryable: bool = True
    #: The worker asked to wait at least this long before the next attempt.
    retry_after: float | None = None
    #: A uniform sample in [-1, 1] that spreads the backoff delay by ``jitter``.
    jitter_sample: float = 0.0

    @classmethod
    def reported(
        cls,
        error_type: str,
        message: str,
        retryable: bool,
        retry_after: float | None = None,
        jitter_sample: float = 0.0,
    ) -> Failure:
        """A failure the worker reported."""
        reason = _REASON_OF_ERROR.get(error_type)
        return cls(error_type, message, reason, True, retryable, retry_after, jitter_sample)


@dataclass(frozen=True)
class Verdict:
    """Retry after ``delay`` seconds, or fail now (``delay`` None), and why."""

    delay: float | None
    #: Whether the attempt counts against ``maxAttempts``.
    counts: bool
    #: Why, in words: "rule 2 (reasons: TimedOut): retry", "not retryable", ...; empty
    #: when no rule matched and the job retries.
    why: str
    #: What ``status.error.retryable`` says if the job fails.
    retryable: bool


def retry_delay(
    policy: RetryPolicy,
    counted: int,
    error_type: str,
    retryable: bool,
    retry_after: float | None = None,
    jitter_sample: float = 0.0,
) -> float | None:
    """The default (no rule matched): seconds to wait before the next attempt, or None
    when the job must fail now.  ``counted`` is the number of finished attempts that count
    against ``maxAttempts``, the one that just failed included."""
    if not retryable or error_type in policy.non_retryable_errors or counted >= policy.max_attempts:
        return None
    return _delay(policy.backoff, counted, jitter_sample, retry_after)


def _delay(
    backoff: Backoff, attempt: int, jitter_sample: float, retry_after: float | None
) -> float:
    """The backoff's delay after ``attempt``, spread by the jitter; ``retry_after`` (the
    worker's ``RetryableError(after=...)``) is a floor, never shortened by the backoff."""
    delay = backoff.delay(attempt) * (1 + backoff.jitter * max(-1.0, min(1.0, jitter_sample)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(0.0, delay)


def decide(policy: RetryPolicy, failure: Failure, counted: int, attempt: int) -> Verdict:
    """The verdict on failed attempt number ``attempt``; ``counted`` is the number of
    earlier finished attempts that counted against ``maxAttempts``."""
    found = first_match(policy.rules or [], failure)
    if found is None:
        delay = retry_delay(
            policy,
            counted + 1,
            failure.error_type,
            failure.retryable,
            failure.retry_after,
            failure.jitter_sample,
        )
        retryable = failure.retryable and failure.error_type not in policy.non_retryable_errors
        if delay is not None:
            why = ""
        elif not retryable:
            why = "not retryable"
        else:
            why = f"no attempts left ({counted + 1}/{policy.max_attempts})"
        return Verdict(delay, True, why, retryable)
    index, rule = found
    label = describe(index, rule)
    if rule.action is RetryAction.FAIL:
        return Verdict(None, True, f"{label}: fail", False)
    if rule.counts_attempt and counted + 1 >= policy.max_attempts:
        why = f"{label}: retry, but no attempts left ({counted + 1}/{policy.max_attempts})"
        return Verdict(None, True, why, True)
    if not rule.counts_attempt and attempt >= MAX_UNCOUNTED_ATTEMPT_NUMBER:
        why = (
            f"{label}: retry not counted, but attempt {attempt} is the most a job may "
            "reach through attempts not counted"
        )
        return Verdict(None, False, why, True)
    backoff = rule.backoff or policy.backoff
    delay = _delay(backoff, attempt, failure.jitter_sample, failure.retry_after)
    why = f"{label}: retry" + ("" if rule.counts_attempt else ", not counted")
    return Verdict(delay, rule.counts_attempt, why, True)


def first_match(rules: list[RetryRule], failure: Failure) -> tuple[int, RetryRule] | None:
    """The first rule (numbered from 1) that matches ``failure``, if any."""
    for index, rule in enumerate(rules, start=1):
        if matches(rule, failure):
            return index, rule
    return None


def matches(rule: RetryRule, failure: Failure) -> bool:
    """Whether ``rule`` matches: every field it sets holds.  A disruption (WorkerShutdown)
    matches only rules that name that reason: it is no fault of the job."""
    match = rule.match
    if match.error_types is not None and not (
        failure.from_worker and failure.error_type in match.error_types
    ):
        return False
    if match.reasons is not None and failure.reason not in match.reasons:
        return False
    if match.reasons is None and failure.reason is FailureReason.WORKER_SHUTDOWN:
        return False
    return match.message_pattern is None or _searches(match.message_pattern, failure.message)


def describe(index: int, rule: RetryRule) -> str:
    """``rule 2 (reasons: TimedOut)``: the rule as its message names it."""
    parts = []
    if rule.match.error_types:
        parts.append("errorTypes: " + ", ".join(rule.match.error_types))
    if rule.match.reasons:
        parts.append("reasons: " + ", ".join(rule.match.reasons))
    if rule.match.message_pattern:
        parts.append(f"messagePattern: {rule.match.message_pattern!r}")
    return f"rule {index} ({'; '.join(parts)})"


_PATTERN_OPTIONS = jsonschema_rs.RegexOptions(
    size_limit=REGEX_SIZE_LIMIT, dfa_size_limit=REGEX_SIZE_LIMIT
)


@lru_cache(maxsize=256)
def _pattern(pattern: str) -> jsonschema_rs.Validator | None:
    """A compiled pattern (searched, not anchored, as JSON Schema's ``pattern``), or None
    if the engine refuses it (RE2 syntax that the Rust engine lacks, or too large)."""
    try:
        return jsonschema_rs.validator_for(
            {"type": "string", "pattern": pattern}, pattern_options=_PATTERN_OPTIONS
        )
    except (jsonschema_rs.ValidationError, ValueError):
        return None


def _searches(pattern: str, message: str) -> bool:
    """Whether ``pattern`` occurs in ``message``; a pattern the engine refuses matches
    nothing (the CRD already refused what RE2 cannot parse)."""
    validator = _pattern(pattern)
    return validator is not None and validator.is_valid(message)
