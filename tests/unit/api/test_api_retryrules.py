"""The ``spec.retry.rules`` model and its CRD schema: what pydantic refuses, what the CRD
declares for the API server (bounds, enums and the CEL rules that refuse rules that can
never match; the API server's verdicts are in tests/integration/test_retry_rules.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shiftboss.api import crdgen
from shiftboss.api.job import JobSpec
from shiftboss.api.retry import MAX_MESSAGE_PATTERN, MAX_RETRY_RULES, FailureReason, RetryAction


def job_spec(*rules: dict[str, Any]) -> JobSpec:
    return JobSpec.model_validate({"pool": "p", "skill": "s", "retry": {"rules": list(rules)}})


def rules_schema() -> dict[str, Any]:
    crd = crdgen.render_crds()["jobs.shiftboss.io"]
    (version,) = crd["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules: dict[str, Any] = spec["properties"]["retry"]["properties"]["rules"]
    return rules


def test_without_rules_the_policy_is_unchanged() -> None:
    spec = JobSpec(pool="p", skill="s")
    assert spec.retry.rules is None
    assert "rules" not in spec.model_dump(exclude_none=True)["retry"]


def test_a_rule_loads_from_a_manifest() -> None:
    spec = job_spec(
        {"match": {"errorTypes": ["RuntimeError"], "messagePattern": "quota"}, "action": "Fail"},
        {
            "match": {"reasons": ["TimedOut", "LeaseExpired"]},
            "action": "Retry",
            "backoff": {"initialDelaySeconds": 0},
            "countsAttempt": False,
        },
    )
    first, second = spec.retry.rules or []
    assert first.action is RetryAction.FAIL and first.counts_attempt is True
    assert first.backoff is None
    assert second.match.reasons == [FailureReason.TIMED_OUT, FailureReason.LEASE_EXPIRED]
    assert second.backoff is not None and second.backoff.initial_delay_seconds == 0
    dumped = spec.model_dump(mode="json", exclude_none=True)["retry"]["rules"][1]
    assert dumped["countsAttempt"] is False and dumped["match"] == {
        "reasons": ["TimedOut", "LeaseExpired"]
    }


@pytest.mark.parametrize(
    ("rule", "words"),
    [
        ({"match": {}, "action": "Fail"}, "an empty match can never match"),
        (
            {"match": {"errorTypes": ["E"], "reasons": ["TimedOut"]}, "action": "Fail"},
            "not both",
        ),
        ({"match": {"reasons": ["Timeout"]}, "action": "Fail"}, "TimedOut"),
        ({"match": {"errorTypes": []}, "action": "Fail"}, "at least 1"),
        ({"match": {"errorTypes": ["E"]}, "action": "retry"}, "'Retry' or 'Fail'"),
        ({"match": {"errorTypes": ["E"]}, "action": "Fail", "backoff": {}}, "Retry rules only"),
        (
            {"match": {"messagePattern": "x" * (MAX_MESSAGE_PATTERN + 1)}, "action": "Fail"},
            f"at most {MAX_MESSAGE_PATTERN}",
        ),
    ],
)
def test_rules_that_cannot_be_are_refused(rule: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        job_spec(rule)


def test_the_number_of_rules_is_bounded() -> None:
    one = {"match": {"errorTypes": ["E"]}, "action": "Fail"}
    job_spec(*[one] * MAX_RETRY_RULES)
    with pytest.raises(ValidationError, match=f"at most {MAX_RETRY_RULES}"):
        job_spec(*[one] * (MAX_RETRY_RULES + 1))


def test_the_crd_bounds_every_list_and_string_of_a_rule() -> None:
    rules = rules_schema()
    assert rules["maxItems"] == MAX_RETRY_RULES
    match = rules["items"]["properties"]["match"]["properties"]
    assert match["errorTypes"]["maxItems"] and match["errorTypes"]["items"]["maxLength"]
    assert match["reasons"]["items"]["enum"] == [r.value for r in FailureReason]
    assert match["messagePattern"]["maxLength"] == MAX_MESSAGE_PATTERN
    assert rules["items"]["properties"]["action"]["enum"] == ["Retry", "Fail"]
    assert rules["items"]["required"] == ["match", "action"]


def test_the_crd_refuses_rules_that_can_never_match() -> None:
    rules = rules_schema()
    (shadow,) = rules["x-kubernetes-validations"]
    assert shadow["rule"].startswith("self.all(j, b, !self.exists(i, a, i < j")
    assert "can never match" in shadow["message"]
    match = rules["items"]["properties"]["match"]
    empty, both = match["x-kubernetes-validations"]
    assert (
        (empty["rule"]) == "has(self.errorTypes) || has(self.reasons) || has(self.messagePattern)"
    )
    assert "can never match" in empty["message"] and "not both" in both["message"]
    (syntax,) = match["properties"]["messagePattern"]["x-kubernetes-validations"]
    # An error inside || is absorbed by a true operand: the rule must propagate it.
    assert syntax["rule"] == "type(''.matches(self)) == bool"
    assert "RE2" in syntax["message"]
    (backoff,) = rules["items"]["x-kubernetes-validations"]
    assert backoff["fieldPath"] == ".backoff" and "Retry" in backoff["message"]
