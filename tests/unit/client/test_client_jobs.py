"""The client's pure parts: the Job a submission creates, a finished Job's status as a
result or an exception, list selectors, and the errors' words."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from shiftboss.api.job import Job
from shiftboss.client import JobCancelled, JobFailed, JobNotFound, PermissionDenied
from shiftboss.client.errors import RequestFailed, request_error
from shiftboss.client.jobs import build_job, field_selector, label_selector, manifest, outcome
from shiftboss.kube.client import ApiError


class Resize(BaseModel):
    url: str
    width: int


def finished(phase: str, **status: object) -> Job:
    return Job.model_validate(
        {
            "metadata": {"name": "j1", "namespace": "team-a"},
            "spec": {"pool": "demo", "skill": "add"},
            "status": {"phase": phase, "attempt": 2, **status},
        }
    )


def test_a_submission_sends_only_what_the_caller_set_so_server_defaults_apply() -> None:
    job = build_job("demo", "add", {"a": 1, "b": 2}, priority=7, labels={"team": "a"})
    assert manifest(job) == {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {"generateName": "add-", "labels": {"team": "a"}},
        "spec": {"pool": "demo", "skill": "add", "params": {"a": 1, "b": 2}, "priority": 7},
    }


def test_a_submission_takes_a_name_camel_cases_the_spec_and_dumps_pydantic_params() -> None:
    job = build_job(
        "demo",
        "resize",
        Resize(url="s3://x", width=10),
        name="r1",
        timeout_seconds=30,
        retry={"maxAttempts": 1},
        annotations={"why": "test"},
    )
    body = manifest(job)
    assert body["metadata"] == {"name": "r1", "annotations": {"why": "test"}}
    assert body["spec"] == {
        "pool": "demo",
        "skill": "resize",
        "params": {"url": "s3://x", "width": 10},
        "timeoutSeconds": 30,
        "retry": {"maxAttempts": 1},
    }


@pytest.mark.parametrize(
    ("skill", "prefix"), [("add", "add-"), ("Make_Thumbs", "make-thumbs-"), ("_x", "x-")]
)
def test_a_generated_name_starts_with_the_skill_made_a_valid_name(skill: str, prefix: str) -> None:
    assert build_job("demo", skill).metadata == {"generateName": prefix}


def test_a_bad_value_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValidationError, match="priority"):
        build_job("demo", "add", priority=11)


@pytest.mark.parametrize("result", [5, 0, None, {"a": [1]}, "text"])
def test_a_succeeded_job_gives_its_result_whatever_json_it_is(result: object) -> None:
    assert outcome(finished("Succeeded", result=result)) == result


def test_a_failed_job_raises_job_failed_with_the_error_type_and_message() -> None:
    job = finished("Failed", error={"type": "FatalError", "message": "boom", "retryable": False})
    with pytest.raises(JobFailed) as caught:
        outcome(job)
    assert (caught.value.error_type, caught.value.message) == ("FatalError", "boom")
    assert caught.value.job is job
    assert str(caught.value) == (
        "job j1 in namespace team-a failed after 2 attempt(s): FatalError: boom"
    )


def test_a_failed_job_without_a_recorded_error_still_says_why() -> None:
    with pytest.raises(JobFailed, match="Unknown: deadline passed"):
        outcome(finished("Failed", message="deadline passed"))


def test_a_cancelled_job_raises_job_cancelled_with_its_message() -> None:
    with pytest.raises(JobCancelled, match="j1 in namespace team-a was cancelled: by spec"):
        outcome(finished("Cancelled", message="by spec"))


def test_selectors_ask_for_the_pool_phase_and_labels_given() -> None:
    assert field_selector(None, None) is None
    assert field_selector("demo", "Running") == "spec.pool=demo,status.phase=Running"
    with pytest.raises(ValueError, match="Runing"):
        field_selector(None, "Runing")
    assert label_selector({"a": "1", "b": "2"}) == "a=1,b=2"
    assert label_selector(None) is None


def test_refusals_name_the_object_and_the_fix() -> None:
    missing = request_error(ApiError(404, "NotFound", "nope"), "get", "team-a", "j1")
    assert isinstance(missing, JobNotFound)
    assert str(missing).startswith("job j1 not found in namespace team-a")

    no_crd = request_error(ApiError(404, "NotFound", "nope"), "create", "team-a", None)
    assert not isinstance(no_crd, JobNotFound)
    assert "CRDs are not installed" in str(no_crd)

    denied = request_error(ApiError(403, "Forbidden", "no"), "watch", "team-a", "j1")
    assert isinstance(denied, PermissionDenied)
    assert "verb 'watch' on jobs.shiftboss.io in namespace team-a" in str(denied)

    taken = request_error(ApiError(409, "AlreadyExists", "x"), "create", "team-a", "j1")
    assert "choose another name" in str(taken)

    other = request_error(ApiError(500, "InternalError", "etcd"), "list", "team-a", None)
    assert type(other) is RequestFailed
    assert (other.status, other.reason) == (500, "InternalError")
