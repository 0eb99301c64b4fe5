"""``spec.retry.rules`` on the real control plane: the API server refuses rules that can
never match, with words; with the operator and the demo pool, examples/retry-rules.yaml
(applied as a user would, so it cannot rot) fails a RuntimeError at once, lets a message
no rule matches take the defaults, and retries timeouts without counting them, past
maxAttempts, until activeDeadlineSeconds ends the job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import get, job_manifest, pool_manifest, wait_jobs_done

from shiftboss.testing.processes import wait_until

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "retry-rules.yaml"


def rule(action: str = "Fail", **match: object) -> dict:
    return {"match": match, "action": action}


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        ([rule()], "spec.retry.rules[0].match: Invalid value: spec.retry.rules[].match must name"),
        (
            [rule(errorTypes=["E"], reasons=["TimedOut"])],
            "not both: no failure has both; split it into two rules",
        ),
        ([rule(reasons=["Timeout"])], 'Unsupported value: "Timeout": supported values:'),
        (
            [rule(errorTypes=["A", "B"]), rule("Retry", errorTypes=["B"])],
            "spec.retry.rules: Invalid value: spec.retry.rules: a rule can never match",
        ),
        (
            [rule(reasons=["TimedOut"]), rule("Retry", reasons=["TimedOut"], messagePattern="x")],
            "a rule can never match",
        ),
        ([rule(messagePattern="(quota")], "error parsing regexp: missing closing )"),
        ([rule(messagePattern="quota(?!s)")], "must be a regular expression in RE2 syntax"),
        ([{**rule(), "match": {"errorTypes": ["E"]}, "backoff": {}}], "Retry rules only"),
    ],
)
def test_the_crd_refuses_rules_that_can_never_match(cluster, namespace, rules, words):
    job = job_manifest("never", "explode", {}, retry={"rules": rules})
    result = cluster.kubectl(
        "-n", namespace, "create", "--dry-run=server", "-f", "-",
        input=json.dumps(job), check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    assert words in " ".join(result.stderr.split()), result.stderr


def test_a_rule_after_a_narrower_one_is_accepted(cluster, namespace):
    rules = [
        rule(errorTypes=["A"], messagePattern="^quota"),
        rule("Retry", errorTypes=["A", "B"]),
        rule("Retry", reasons=["TimedOut"], messagePattern="x"),
        {**rule("Retry", reasons=["TimedOut", "LeaseExpired"]), "countsAttempt": False},
        rule(reasons=["WorkerShutdown", "ParamsInvalid", "ResultTooLarge"]),
    ]
    job = job_manifest("fine", "explode", {}, retry={"rules": rules})
    cluster.kubectl("-n", namespace, "create", "--dry-run=server", "-f", "-", input=json.dumps(job))


def test_the_example_rules_on_the_demo_pool(cluster, namespace, operator):
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(
        pool_manifest("demo", replicas=1, concurrency=4)
    ))  # fmt: skip
    cluster.kubectl("-n", namespace, "apply", "-f", str(EXAMPLE))

    def patient_retried_uncounted():
        events = get(cluster, namespace, "events")["items"]
        return [
            e["message"]
            for e in events
            if e["involvedObject"].get("name") == "patient" and e["reason"] == "Retrying"
        ]

    (first, *_) = wait_until(patient_retried_uncounted, timeout=120, interval=0.5)
    assert first.startswith(
        "attempt 1 failed (TimedOut); rule 1 (reasons: TimedOut, LeaseExpired): retry, "
        "not counted; next attempt at "
    ), first
    assert first.endswith("Z")

    jobs = {j["metadata"]["name"]: j["status"] for j in wait_jobs_done(cluster, namespace, 4)}

    denied = jobs["no-permission"]
    assert (denied["phase"], denied["attempt"]) == ("Failed", 1)
    assert denied["message"] == (
        "failed: RuntimeError: permission denied: bucket photos (rule 1 (errorTypes: "
        "RuntimeError; messagePattern: '^permission denied'): fail)"
    )
    assert denied["error"]["retryable"] is False

    flaky = jobs["upstream-flaky"]  # no rule matched: maxAttempts decides
    assert (flaky["phase"], flaky["attempt"], flaky["countedAttempts"]) == ("Failed", 3, 3)
    assert "no attempts left (3/3)" in flaky["message"]

    once = jobs["once-only"]
    assert (once["phase"], once["attempt"]) == ("Failed", 1)
    assert "rule 1 (errorTypes: RuntimeError, ValueError): fail" in once["message"]

    patient = jobs["patient"]  # maxAttempts 1, yet retried until activeDeadlineSeconds
    assert patient["phase"] == "Failed"
    assert patient["error"]["type"] == "DeadlineExceeded"
    assert patient["attempt"] >= 2, patient
    # Only an attempt the deadline cut short counts: no rule decides that one.
    retried = [a for a in patient["attempts"] if a.get("errorType") == "TimedOut"]
    assert len(retried) >= patient["attempt"] - 1
    assert patient["countedAttempts"] == patient["attempt"] - len(retried) <= 1
