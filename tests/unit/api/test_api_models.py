"""The WorkerPool and Job models: loading objects as the API server returns them, status
patch bodies, validation matching the CRD rules, and the helpers the operator uses."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from shiftboss.api import (
    API_GROUP_VERSION,
    MAX_ATTEMPT_HISTORY,
    AttemptOutcome,
    AttemptRecord,
    Backoff,
    Condition,
    ConditionStatus,
    Job,
    JobError,
    JobPhase,
    JobProgress,
    JobSpec,
    JobStatus,
    PoolConditionType,
    WorkerPool,
    WorkerPoolSpec,
    WorkerPoolStatus,
    format_duration,
    get_condition,
    is_terminal,
    selector_for,
    set_condition,
)
from shiftboss.api.crdgen import render_crds
from shiftboss.api.openapi import apply_defaults, value_errors

SERVER_METADATA = {
    "name": "resize",
    "namespace": "media",
    "uid": "6f1c3c1e-8a0e-4a43-9b8e-0f5d1d3c2b1a",
    "resourceVersion": "12345",
    "generation": 3,
    "creationTimestamp": "2026-11-23T10:00:00Z",
    "labels": {"team": "media"},
    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
    "finalizers": ["kopf.zalando.org/KopfFinalizerMarker"],
    "managedFields": [
        {
            "manager": "kubectl-client-side-apply",
            "operation": "Update",
            "apiVersion": API_GROUP_VERSION,
            "time": "2026-11-23T10:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {".": {}}},
        }
    ],
}

POOL_BODY: dict[str, Any] = {
    "apiVersion": API_GROUP_VERSION,
    "kind": "WorkerPool",
    "metadata": SERVER_METADATA,
    "spec": {
        "image": "registry.example.com/resize-worker:1.4.0",
        "app": "app:worker",
        "replicas": 3,
        "concurrency": 4,
        "env": [
            {"name": "LOG_LEVEL", "value": "debug"},
            {
                "name": "API_TOKEN",
                "valueFrom": {"secretKeyRef": {"name": "tokens", "key": "api"}},
            },
        ],
        "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": 2}},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
        "serviceAccountName": "resize-worker",
        "drainTimeoutSeconds": 120,
        "paused": False,
    },
    "status": {
        "replicas": 3,
        "readyReplicas": 2,
        "busyWorkers": 1,
        "queuedJobs": 7,
        "runningJobs": 1,
        "selector": "shiftboss.io/pool=resize",
        "templateHash": "5d8f7c9b6",
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "ScalingUp",
                "message": "2 of 3 workers ready",
                "lastTransitionTime": "2026-11-23T10:00:05Z",
                "observedGeneration": 3,
            }
        ],
    },
}

JOB_BODY: dict[str, Any] = {
    "apiVersion": API_GROUP_VERSION,
    "kind": "Job",
    "metadata": {**SERVER_METADATA, "name": "resize-42"},
    "spec": {
        "pool": "resize",
        "skill": "resize",
        "params": {"url": "https://example.com/a.png", "width": 640, "opts": {"fit": [1, 2]}},
        "priority": 7,
        "timeoutSeconds": 60,
        "activeDeadlineSeconds": 600,
        "retry": {
            "maxAttempts": 5,
            "backoff": {
                "initialDelaySeconds": 2,
                "factor": 3.0,
                "maxDelaySeconds": 120,
                "jitter": 0.2,
            },
            "nonRetryableErrors": ["ValueError", "acme.errors.BadInput"],
        },
        "cancel": False,
        "ttlSecondsAfterFinished": 3600,
        "idempotencyKey": "order-9912",
        "suspend": False,
        "runGeneration": 1,
    },
    "status": {
        "phase": "Failed",
        "attempt": 2,
        "countedAttempts": 1,
        "worker": "resize-5d8f7c9b6-abcde",
        "startTime": "2026-11-23T10:00:01Z",
        "attemptStartTime": "2026-11-23T10:00:04.250000Z",
        "completionTime": "2026-11-23T10:00:05Z",
        "duration": "4s",
        "result": {"ok": False},
        "error": {"type": "ValueError", "message": "width must be > 0", "retryable": False},
        "progress": {
            "percent": 50.0,
            "message": "downloading",
            "updatedAt": "2026-11-23T10:00:04Z",
        },
        "attempts": [
            {
                "attempt": 1,
                "worker": "resize-5d8f7c9b6-xyz12",
                "startTime": "2026-11-23T10:00:01Z",
                "endTime": "2026-11-23T10:00:02Z",
                "outcome": "LeaseExpired",
            },
            {
                "attempt": 2,
                "worker": "resize-5d8f7c9b6-abcde",
                "startTime": "2026-11-23T10:00:04.250000Z",
                "endTime": "2026-11-23T10:00:05Z",
                "outcome": "Failed",
                "errorType": "ValueError",
                "message": "width must be > 0",
            },
        ],
        "message": "failed: ValueError: width must be > 0",
        "runGeneration": 1,
        "runs": [
            {
                "runGeneration": 0,
                "phase": "Succeeded",
                "attempts": 1,
                "lastAttempt": 1,
                "startTime": "2026-11-22T10:00:01Z",
                "completionTime": "2026-11-22T10:00:02Z",
                "duration": "1s",
                "message": "succeeded on attempt 1",
            }
        ],
        "timeline": [
            {
                "to": "Running",
                "reason": "Claimed",
                "attempt": 2,
                "worker": "resize-5d8f7c9b6-abcde",
                "time": "2026-11-23T10:00:04.250000Z",
            },
            {
                "from": "Running",
                "to": "Failed",
                "reason": "AttemptFailed",
                "attempt": 2,
                "time": "2026-11-23T10:00:05Z",
                "message": "failed: ValueError: width must be > 0",
            },
        ],
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "NotRetryable",
                "message": "failed: ValueError: width must be > 0",
                "lastTransitionTime": "2026-11-23T10:00:05Z",
                "observedGeneration": 3,
            },
            {
                "type": "Stalled",
                "status": "True",
                "reason": "NotRetryable",
                "message": "failed: ValueError: width must be > 0",
                "lastTransitionTime": "2026-11-23T10:00:05Z",
                "observedGeneration": 3,
            },
            {
                "type": "Failed",
                "status": "True",
                "reason": "NotRetryable",
                "message": "failed: ValueError: width must be > 0",
                "lastTransitionTime": "2026-11-23T10:00:05Z",
                "observedGeneration": 3,
            },
        ],
    },
}


def _crd_schema(plural: str) -> dict[str, Any]:
    crd = render_crds()[f"{plural}.shiftboss.io"]
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


# --------------------------------------------------------------------------- loading


def test_workerpool_loads_a_server_object_and_round_trips():
    body = copy.deepcopy(POOL_BODY)
    body["someFutureField"] = {"x": 1}  # unknown top-level keys are ignored
    body["spec"]["someFutureSpecField"] = True
    pool = WorkerPool.model_validate(body)
    assert pool.name == "resize" and pool.namespace == "media" and pool.generation == 3
    assert pool.spec.replicas == 3 and pool.spec.concurrency == 4
    assert pool.spec.env[1].value_from.secret_key_ref == {"name": "tokens", "key": "api"}
    assert pool.spec.resources.requests == {"cpu": "500m", "memory": "256Mi"}
    assert pool.spec.resources.limits == {"cpu": 2}
    assert pool.spec.service_account_name == "resize-worker"
    assert pool.status.conditions[0].status is ConditionStatus.FALSE
    assert pool.status.conditions[0].last_transition_time == datetime(
        2026, 11, 23, 10, 0, 5, tzinfo=UTC
    )
    assert pool.to_manifest() == POOL_BODY


def test_job_loads_a_server_object_and_round_trips():
    body = copy.deepcopy(JOB_BODY)
    body["unknown"] = 1
    job = Job.model_validate(body)
    assert job.spec.retry.backoff.factor == 3.0
    assert job.spec.params["opts"] == {"fit": [1, 2]}
    assert job.status.phase is JobPhase.FAILED
    assert job.status.attempts[0].outcome is AttemptOutcome.LEASE_EXPIRED
    assert job.status.attempt_start_time.microsecond == 250000
    assert job.to_manifest() == JOB_BODY


def test_sample_objects_validate_against_the_crd_schemas():
    for plural, body in (("workerpools", POOL_BODY), ("jobs", JOB_BODY)):
        schema = _crd_schema(plural)
        assert value_errors(schema, body) == []
        # ...and the validator is not blind: a broken copy fails.
        broken = copy.deepcopy(body)
        broken["spec"]["replicas" if plural == "workerpools" else "priority"] = 11000
        assert value_errors(schema, broken)


def test_minimal_objects_get_the_same_defaults_from_pydantic_and_the_crd():
    for plural, model, body in (
        ("workerpools", WorkerPool, {"spec": {"image": "img", "app": "app:worker"}}),
        ("jobs", Job, {"spec": {"pool": "resize", "skill": "resize"}}),
    ):
        body = {"apiVersion": API_GROUP_VERSION, "metadata": {"name": "x"}, **body}
        server = apply_defaults(_crd_schema(plural), body)["spec"]
        python = model.model_validate(body).to_manifest()["spec"]
        # pydantic gives empty lists/maps where the server leaves the field out.
        assert _drop_empty_collections(python) == server, plural


def _drop_empty_collections(value: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _drop_empty_collections(v) if isinstance(v, dict) and k != "params" else v
        for k, v in value.items()
        if k == "params" or v not in ([], {})
    }


def test_job_status_as_written():
    status = JobStatus(
        phase=JobPhase.RUNNING,
        attempt=1,
        worker="resize-abc",
        start_time=datetime(2026, 11, 23, 10, 0, 1, tzinfo=UTC),
        attempt_start_time=datetime(
            2026, 11, 23, 11, 0, 1, 500, tzinfo=timezone(timedelta(hours=1))
        ),
        progress=JobProgress(percent=10, message="starting"),
    )
    body = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert body == {
        "phase": "Running",
        "attempt": 1,
        "countedAttempts": 0,
        "worker": "resize-abc",
        "startTime": "2026-11-23T10:00:01Z",
        "attemptStartTime": "2026-11-23T10:00:01.000500Z",
        "progress": {"percent": 10.0, "message": "starting"},
        "attempts": [],
        # Empty lists are written too: a merge patch would otherwise keep the old ones.
        "runs": [],
        "timeline": [],
        "conditions": [],
    }
    assert value_errors(_crd_schema("jobs")["properties"]["status"], body) == []


def test_workerpool_status_patch_body():
    status = WorkerPoolStatus(replicas=2, selector=selector_for("resize"))
    status.conditions = set_condition(
        status.conditions,
        PoolConditionType.READY,
        True,
        "AllReady",
        "2 of 2 workers ready",
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    body = status.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert body["selector"] == "shiftboss.io/pool=resize"
    assert body["conditions"] == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "AllReady",
            "message": "2 of 2 workers ready",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    ]
    assert value_errors(_crd_schema("workerpools")["properties"]["status"], body) == []


def test_naive_timestamps_are_taken_as_utc():
    progress = JobProgress(updated_at=datetime(2026, 1, 1, 12, 0, 0))
    assert progress.updated_at.tzinfo is UTC
    assert progress.model_dump(mode="json")["updatedAt"] == "2026-01-01T12:00:00Z"


# --------------------------------------------------------------------------- validation


def _pool_spec(**overrides: Any) -> dict[str, Any]:
    return {"image": "img", "app": "app:worker", **overrides}


@pytest.mark.parametrize(
    "overrides",
    [
        {"app": "app"},
        {"app": "a:b:c"},
        {"app": ":worker"},
        {"replicas": -1},
        {"replicas": 1001},
        {"concurrency": 0},
        {"drainTimeoutSeconds": 86401},
        {"env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {}}}]},
        {"env": [{"name": "A=B", "value": "x"}]},
        {"resources": {"requests": {"memory": "1 Gi"}}},
        {"resources": {"limits": {"cpu": 1.5}}},
        {"serviceAccountName": "Not_A_Name"},
    ],
)
def test_invalid_workerpool_specs_are_refused(overrides):
    with pytest.raises(ValidationError):
        WorkerPoolSpec.model_validate(_pool_spec(**overrides))
    # The CRD schema refuses the same (except the CEL-only env rule, checked by rule).
    schema = _crd_schema("workerpools")["properties"]["spec"]
    if "env" not in overrides or "=" in overrides["env"][0]["name"]:
        assert value_errors(schema, _pool_spec(**overrides)), overrides


@pytest.mark.parametrize(
    ("model", "data", "words"),
    [
        (WorkerPoolSpec, _pool_spec(app="app.worker"), "must be module:attribute ("),
        (WorkerPoolSpec, _pool_spec(serviceAccountName="A_B"), "must be a DNS-1123 subdomain"),
        (WorkerPoolSpec, _pool_spec(env=[{"name": "A=B"}]), "must be an environment variable"),
        (WorkerPoolSpec, _pool_spec(resources={"limits": {"cpu": "1 cpu"}}), "must be a quantity"),
        (JobSpec, {"pool": "Resize", "skill": "s"}, "must be a DNS-1123 label"),
        (JobSpec, {"pool": "p", "skill": "9lives"}, "must be a skill name"),
        (Condition, {"type": "not ready", "status": "True"}, "must be a condition type"),
    ],
)
def test_pattern_refusals_say_the_form_in_words(model, data, words):
    """The same words as the CRD's rules, so the Python client says what the server says."""
    with pytest.raises(ValidationError, match=re.escape(words)) as refused:
        model.model_validate(data)
    assert "should match pattern" not in str(refused.value)


def test_bounds_of_patterned_strings_keep_their_own_message():
    with pytest.raises(ValidationError, match="at most 512 characters"):
        WorkerPoolSpec.model_validate(_pool_spec(app="a:" + "b" * 511))
    with pytest.raises(ValidationError, match="at least 3 characters"):
        WorkerPoolSpec.model_validate(_pool_spec(app="a:"))


def test_reserved_env_names_still_load():
    """The CRD refuses them, but a pool stored before the rule must still load (the pod
    builder drops them)."""
    spec = WorkerPoolSpec.model_validate(_pool_spec(env=[{"name": "SHIFTBOSS_POOL", "value": "x"}]))
    assert spec.env[0].name == "SHIFTBOSS_POOL"


def test_workerpool_spec_defaults():
    spec = WorkerPoolSpec(image="img", app="app:worker")
    assert spec.replicas == 1
    assert spec.concurrency == 1
    assert spec.service_account_name == "default"
    assert spec.drain_timeout_seconds == 60
    assert spec.paused is False
    assert spec.env == [] and spec.tolerations == [] and spec.node_selector == {}
    assert spec.resources is None and spec.affinity is None
    # Empty value with valueFrom is allowed, as in Pods.
    WorkerPoolSpec.model_validate(_pool_spec(env=[{"name": "A", "value": "", "valueFrom": {}}]))


def _job_spec(**overrides: Any) -> dict[str, Any]:
    return {"pool": "resize", "skill": "resize", **overrides}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"pool": "Resize"}, "pattern"),
        ({"pool": "a" * 64}, "at most 63"),
        ({"skill": "9lives"}, "pattern"),
        ({"priority": 11}, "less than or equal to 10"),
        ({"priority": -1}, "greater than or equal to 0"),
        ({"timeoutSeconds": 0}, "greater than or equal to 1"),
        (
            {"timeoutSeconds": 60, "activeDeadlineSeconds": 30},
            "spec.activeDeadlineSeconds must be greater than or equal to spec.timeoutSeconds",
        ),
        (
            {"retry": {"backoff": {"initialDelaySeconds": 10, "maxDelaySeconds": 5}}},
            "maxDelaySeconds must be greater than or equal to initialDelaySeconds",
        ),
        ({"retry": {"maxAttempts": 0}}, "greater than or equal to 1"),
        ({"retry": {"backoff": {"factor": 0.5}}}, "greater than or equal to 1"),
        ({"retry": {"backoff": {"jitter": 1.5}}}, "less than or equal to 1"),
        ({"idempotencyKey": "k" * 254}, "at most 253"),
        ({"ttlSecondsAfterFinished": -1}, "greater than or equal to 0"),
    ],
)
def test_invalid_job_specs_are_refused(overrides, message):
    with pytest.raises(ValidationError, match=message):
        JobSpec.model_validate(_job_spec(**overrides))


def test_job_spec_defaults():
    spec = JobSpec(pool="resize", skill="resize")
    assert spec.params == {}
    assert spec.priority == 5
    assert spec.timeout_seconds is None and spec.active_deadline_seconds is None
    assert spec.retry.max_attempts == 3
    assert spec.retry.backoff == Backoff(
        initial_delay_seconds=1, factor=2, max_delay_seconds=300, jitter=0.1
    )
    assert spec.retry.non_retryable_errors == []
    assert spec.cancel is False
    assert spec.ttl_seconds_after_finished is None and spec.idempotency_key is None
    # Snake-case names work too (populate_by_name).
    assert JobSpec(pool="p", skill="s", timeout_seconds=5).timeout_seconds == 5


def test_backoff_delay():
    backoff = Backoff(initial_delay_seconds=1, factor=2, max_delay_seconds=10)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert Backoff(factor=100).delay(10**6) == 300


# --------------------------------------------------------------------------- helpers


def test_job_phases():
    assert [p.value for p in JobPhase] == [
        "Pending",
        "Queued",
        "Running",
        "Retrying",
        "Suspended",
        "Succeeded",
        "Failed",
        "Cancelled",
    ]
    terminal = {p for p in JobPhase if p.is_terminal}
    assert terminal == {JobPhase.SUCCEEDED, JobPhase.FAILED, JobPhase.CANCELLED}
    assert is_terminal("Failed") and is_terminal(JobPhase.CANCELLED)
    assert not is_terminal("Retrying") and not is_terminal(None)
    assert [o.value for o in AttemptOutcome] == [
        "Succeeded",
        "Failed",
        "LeaseExpired",
        "TimedOut",
        "Cancelled",
        "Disrupted",
    ]


def test_set_condition_keeps_transition_time_when_status_is_unchanged():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    t1 = t0 + timedelta(minutes=5)
    conditions = set_condition([], "Ready", False, "Starting", now=t0)
    conditions = set_condition(conditions, "Degraded", "False", "AsExpected", now=t0)
    conditions = set_condition(conditions, "Ready", False, "StillStarting", now=t1)
    ready = get_condition(conditions, "Ready")
    assert ready.last_transition_time == t0 and ready.reason == "StillStarting"
    conditions = set_condition(conditions, "Ready", ConditionStatus.TRUE, "AllReady", now=t1)
    assert [c.type for c in conditions] == ["Ready", "Degraded"]
    assert get_condition(conditions, "Ready").last_transition_time == t1
    assert get_condition(conditions, "Missing") is None


def test_long_messages_are_truncated_to_the_crd_bound():
    error = JobError(type="ValueError", message="x" * 10_000)
    assert len(error.message) == 4096 and error.message.endswith("…")
    status = JobStatus(message="y" * 5000)
    assert len(status.message) == 1024
    condition = Condition(type="Ready", status="True", message="z" * 40_000)
    assert len(condition.message) == 32768
    status.message = "w" * 2000  # assignments are validated (and truncated) too
    assert len(status.message) == 1024 and status.message.startswith("w")
    status.phase = "Running"
    assert status.phase is JobPhase.RUNNING
    with pytest.raises(ValidationError):
        status.attempt = -1
    schema = _crd_schema("jobs")["properties"]["status"]
    body = JobStatus(error=error, message=status.message).model_dump(mode="json", exclude_none=True)
    assert value_errors(schema, body) == []


def test_attempt_history_is_bounded():
    status = JobStatus()
    for n in range(1, MAX_ATTEMPT_HISTORY + 6):
        status.record_attempt(AttemptRecord(attempt=n, outcome=AttemptOutcome.FAILED))
    assert len(status.attempts) == MAX_ATTEMPT_HISTORY
    assert status.attempts[0].attempt == 6 and status.attempts[-1].attempt == 25
    status.record_attempt(AttemptRecord(attempt=25, outcome=AttemptOutcome.SUCCEEDED))
    assert len(status.attempts) == MAX_ATTEMPT_HISTORY
    assert status.attempts[-1].outcome is AttemptOutcome.SUCCEEDED
    with pytest.raises(ValidationError):
        JobStatus(attempts=[{"attempt": n} for n in range(1, 22)])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0ms"),
        (0.85, "850ms"),
        (1, "1s"),
        (3.24, "3.2s"),
        (59.9, "59.9s"),
        (245, "4m5s"),
        (7380, "2h3m"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (-1, "0ms"),
    ],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_selector_for():
    assert selector_for("resize") == "shiftboss.io/pool=resize"
