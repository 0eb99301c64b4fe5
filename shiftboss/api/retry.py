"""How a Job is retried: the backoff, and the rules that decide by why an attempt failed
(``spec.retry``); ``shiftboss.jobs.retryrules`` applies them."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from .common import SERVER_DEFAULT_EMPTY, ApiModel, cel, validations

ErrorTypeName = Annotated[str, Field(min_length=1, max_length=256)]


_BACKOFF_RULE = cel(
    "!has(self.initialDelaySeconds) || !has(self.maxDelaySeconds) || "
    "self.maxDelaySeconds >= self.initialDelaySeconds",
    "spec.retry.backoff.maxDelaySeconds must be greater than or equal to "
    "initialDelaySeconds (in a retry rule's backoff too): raise maxDelaySeconds or lower "
    "initialDelaySeconds",
    field_path=".maxDelaySeconds",
)


class Backoff(ApiModel):
    """Exponential backoff between attempts: the delay before attempt n+1 is
    min(initialDelaySeconds * factor^(n-1), maxDelaySeconds), spread by +/- jitter."""

    model_config = ConfigDict(json_schema_extra=validations(_BACKOFF_RULE))

    initial_delay_seconds: int = Field(
        1,
        ge=0,
        le=86400,
        description="Delay before the second attempt, in seconds.",
    )
    factor: float = Field(
        2.0,
        ge=1,
        le=100,
        description="Multiplier of the delay after each further failed attempt (1 = constant).",
    )
    max_delay_seconds: int = Field(
        300,
        ge=0,
        le=86400,
        description="Upper bound of the delay, in seconds; at least initialDelaySeconds.",
    )
    jitter: float = Field(
        0.1,
        ge=0,
        le=1,
        description=(
            "Random spread of each delay, as a fraction: 0.1 means +/-10%. "
            "Spreads out retries of many jobs that failed together."
        ),
    )

    @model_validator(mode="after")
    def _bounds(self) -> Backoff:
        if self.max_delay_seconds < self.initial_delay_seconds:
            raise ValueError(_BACKOFF_RULE["message"])
        return self

    def delay(self, attempt: int) -> float:
        """The delay in seconds (before jitter) after failed attempt number ``attempt``."""
        exponent = max(attempt - 1, 0)
        try:
            raw = self.initial_delay_seconds * math.pow(self.factor, exponent)
        except OverflowError:
            raw = math.inf
        return float(min(raw, self.max_delay_seconds))


class RetryAction(StrEnum):
    """What a retry rule does with a failed attempt it matches."""

    RETRY = "Retry"
    FAIL = "Fail"


class FailureReason(StrEnum):
    """Why the operator, not the skill, ended an attempt (what ``match.reasons`` names)."""

    #: The worker stopped heartbeating (``status.attempts[].outcome`` LeaseExpired).
    LEASE_EXPIRED = "LeaseExpired"
    #: The attempt ran past ``spec.timeoutSeconds`` (outcome TimedOut).
    TIMED_OUT = "TimedOut"
    #: The attempt was cut short by its worker's shutdown or its pod's deletion (outcome
    #: Disrupted, error type HandedBack, WorkerShutdown or PodDeleted).
    WORKER_SHUTDOWN = "WorkerShutdown"
    #: The worker refused the params (error type InvalidParams).
    PARAMS_INVALID = "ParamsInvalid"
    #: The result was over the inline size limit (error type ResultTooLarge).
    RESULT_TOO_LARGE = "ResultTooLarge"


#: Rules per job, error types per rule, and a message pattern's length: bounds that keep
#: the CRD's rules within the API server's CEL budget and the operator's matching cheap.
MAX_RETRY_RULES = 16
MAX_RULE_ERROR_TYPES = 16
MAX_MESSAGE_PATTERN = 256
#: The hard bound of attempts a rule does not count: a job whose attempt number reached it
#: fails instead (disruptions, never counted, are bounded by activeDeadlineSeconds only).
MAX_UNCOUNTED_ATTEMPT_NUMBER = 100

_MATCH_RULES = (
    cel(
        "has(self.errorTypes) || has(self.reasons) || has(self.messagePattern)",
        "spec.retry.rules[].match must name errorTypes, reasons or a messagePattern: an "
        "empty match can never match",
    ),
    cel(
        "!has(self.errorTypes) || !has(self.reasons)",
        "spec.retry.rules[].match names errorTypes (the worker's errors) or reasons (the "
        "operator's), not both: no failure has both; split it into two rules",
    ),
)


class RetryMatch(ApiModel):
    """Which failed attempts a retry rule applies to: all the fields set must hold."""

    model_config = ConfigDict(json_schema_extra=validations(*_MATCH_RULES))

    error_types: list[ErrorTypeName] | None = Field(
        None,
        min_length=1,
        max_length=MAX_RULE_ERROR_TYPES,
        description=(
            "Error type names the worker reported (for example RuntimeError, "
            "acme.errors.QuotaExceeded), matched exactly; any one of them matches."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    reasons: list[FailureReason] | None = Field(
        None,
        min_length=1,
        max_length=len(FailureReason),
        description=(
            "Reasons the operator ended the attempt: LeaseExpired, TimedOut, WorkerShutdown "
            "(its worker shut down or its pod was deleted; such an attempt is never counted), "
            "ParamsInvalid (the worker refused the params), ResultTooLarge; any one matches."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    message_pattern: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_MESSAGE_PATTERN,
        description=(
            "A regular expression (RE2 syntax: no look-around or back-references) searched "
            "for in the attempt's error message; anchor it with ^ and $ to match the whole "
            "message. Evaluated by a linear-time engine."
        ),
        json_schema_extra=validations(
            cel(
                "type(''.matches(self)) == bool",
                "spec.retry.rules[].match.messagePattern must be a regular expression in RE2 "
                "syntax (no look-around, no back-references), for example 'quota|rate limit'",
            )
        ),
    )

    @model_validator(mode="after")
    def _can_match(self) -> RetryMatch:
        empty, both = _MATCH_RULES
        if not (self.error_types or self.reasons or self.message_pattern):
            raise ValueError(empty["message"])
        if self.error_types and self.reasons:
            raise ValueError(both["message"])
        return self


_RULE_RULES = (
    cel(
        "self.action == 'Retry' || !has(self.backoff)",
        "spec.retry.rules[].backoff applies to Retry rules only: remove it, or make the "
        "rule's action Retry",
        field_path=".backoff",
    ),
)


class RetryRule(ApiModel):
    """One retry rule: which failed attempts it matches and what becomes of the job."""

    model_config = ConfigDict(json_schema_extra=validations(*_RULE_RULES))

    match: RetryMatch = Field(description="Which failed attempts the rule applies to.")
    action: RetryAction = Field(
        description=(
            "Retry (if attempts are left) or Fail the job at once. Overrides the worker's "
            "own verdict (a FatalError) and nonRetryableErrors."
        )
    )
    backoff: Backoff | None = Field(
        None,
        description=(
            "Delay before the next attempt when the rule retries, growing with the attempt "
            "number. Unset: spec.retry.backoff."
        ),
    )
    counts_attempt: bool = Field(
        True,
        description=(
            "Whether the attempt counts against maxAttempts. An attempt not counted still "
            f"ends the job once it is attempt {MAX_UNCOUNTED_ATTEMPT_NUMBER} (or past "
            "activeDeadlineSeconds), so a job never retries forever."
        ),
    )

    @model_validator(mode="after")
    def _backoff_only_to_retry(self) -> RetryRule:
        if self.action is RetryAction.FAIL and self.backoff is not None:
            raise ValueError(_RULE_RULES[0]["message"])
        return self


_SHADOWS = (
    "(has(b.match.errorTypes) && has(a.match.errorTypes) && "
    "b.match.errorTypes.all(t, t in a.match.errorTypes)) || "
    "(has(b.match.reasons) && has(a.match.reasons) && "
    "b.match.reasons.all(t, t in a.match.reasons))"
)
_SHADOW_RULE = cel(
    f"self.all(j, b, !self.exists(i, a, i < j && !has(a.match.messagePattern) && ({_SHADOWS})))",
    "spec.retry.rules: a rule can never match: an earlier rule without messagePattern matches every "
    "error type or reason it names, and the first matching rule wins; remove the later "
    "rule, or move it before the earlier one",
)


class RetryPolicy(ApiModel):
    """When and how a failed attempt is retried."""

    max_attempts: int = Field(
        3,
        ge=1,
        le=100,
        description=(
            "Total number of attempts, the first included (1 = never retry). Attempts cut "
            "short by disruptions (the worker's pod deleted for a rollout or scale-down, "
            "or handed back by its worker) are not counted."
        ),
    )
    backoff: Backoff = Field(
        default_factory=Backoff,
        description="Delay between attempts.",
        json_schema_extra=SERVER_DEFAULT_EMPTY,
    )
    rules: list[RetryRule] | None = Field(
        None,
        min_length=1,
        max_length=MAX_RETRY_RULES,
        description=(
            "Rules by the failure's error type, reason or message, evaluated in order: the "
            "first that matches a failed attempt decides whether the job retries (and after "
            "which backoff, counted or not) or fails. A failure no rule matches follows "
            "maxAttempts, backoff and nonRetryableErrors."
        ),
        json_schema_extra={
            "x-kubernetes-list-type": "atomic",
            **validations(_SHADOW_RULE),
        },
    )
    non_retryable_errors: list[ErrorTypeName] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Error type names (for example ValueError, acme.errors.BadInput) that fail "
            "the job at once instead of being retried."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
