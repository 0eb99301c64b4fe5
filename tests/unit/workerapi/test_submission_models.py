"""The submission API's request model and its mapping to a Job manifest and back."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shiftboss.workerapi.submission_models import (
    SUBMITTED_BY,
    SubmitRequest,
    job_manifest,
    job_view,
)

USER = "system:serviceaccount:team-a:ci"


def errors(body: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        SubmitRequest.model_validate(body)
    return [(e["loc"], e["msg"]) for e in caught.value.errors()]


def test_manifest_carries_only_the_fields_set_and_who_submitted_it():
    request = SubmitRequest.model_validate(
        {
            "pool": "demo",
            "skill": "add",
            "params": {"a": 1},
            "timeoutSeconds": 30,
            "retry": {"maxAttempts": 2},
        }
    )
    assert job_manifest(request, USER) == {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {"generateName": "add-", "annotations": {SUBMITTED_BY: USER}},
        # No priority, no backoff: the API server's defaults apply, as for kubectl.
        "spec": {
            "pool": "demo",
            "skill": "add",
            "params": {"a": 1},
            "timeoutSeconds": 30,
            "retry": {"maxAttempts": 2},
        },
    }


def test_name_or_generate_name():
    named = SubmitRequest.model_validate({"pool": "demo", "skill": "add", "name": "add-1"})
    assert job_manifest(named, USER)["metadata"]["name"] == "add-1"
    assert "generateName" not in job_manifest(named, USER)["metadata"]
    prefixed = SubmitRequest(pool="demo", skill="Add_Numbers", generate_name="sum-")
    assert job_manifest(prefixed, USER)["metadata"]["generateName"] == "sum-"
    default = SubmitRequest(pool="demo", skill="Add_Numbers")
    assert job_manifest(default, USER)["metadata"]["generateName"] == "add-numbers-"
    assert job_manifest(default, USER)["spec"]["params"] == {}
    assert errors({"pool": "demo", "skill": "x", "name": "a", "generateName": "b-"}) == [
        ((), "Value error, set name or generateName, not both")
    ]


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"bogus": 1}, ("bogus",), "Extra inputs are not permitted"),
        ({"retry": {"maxAttemps": 2}}, ("retry",), "unknown field 'retry.maxAttemps'"),
        (
            {"retry": {"backoff": {"factor": 2, "cap": 9}}},
            ("retry",),
            "unknown field 'retry.backoff.cap'",
        ),
        ({"priority": "high"}, ("priority",), "valid integer"),
        ({"priority": 11}, ("priority",), "less than or equal to 10"),
        ({"name": "Not_A_Name"}, ("name",), "should match pattern"),
        ({"timeoutSeconds": 60, "activeDeadlineSeconds": 5}, (), "activeDeadlineSeconds"),
    ],
)
def test_bad_fields_are_named(body, loc, words):
    [(where, message)] = errors({"pool": "demo", "skill": "add", **body})
    assert where == loc
    assert words in message


def test_snake_case_names_are_accepted_as_well():
    request = SubmitRequest.model_validate(
        {"pool": "demo", "skill": "add", "timeout_seconds": 5, "retry": {"max_attempts": 1}}
    )
    assert job_manifest(request, USER)["spec"]["timeoutSeconds"] == 5


def test_view_of_a_job_read_from_the_api_server():
    obj = {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {
            "name": "add-x1",
            "namespace": "team-a",
            "uid": "u-1",
            "creationTimestamp": "2026-01-02T03:04:05Z",
            "annotations": {SUBMITTED_BY: USER},
            "managedFields": [{"manager": "shiftboss"}],
        },
        "spec": {"pool": "demo", "skill": "add", "params": {}, "priority": 5},
        "status": {"phase": "Succeeded", "attempt": 1, "result": 5},
    }
    view = job_view(obj).model_dump(mode="json", exclude_none=True)
    assert view["name"] == "add-x1" and view["namespace"] == "team-a" and view["uid"] == "u-1"
    assert view["submittedBy"] == USER
    assert view["createdAt"] == "2026-01-02T03:04:05Z"
    assert view["status"]["phase"] == "Succeeded" and view["status"]["result"] == 5
    unsubmitted = {**obj, "metadata": {"name": "a", "namespace": "n", "uid": "u"}}
    del unsubmitted["status"]
    assert "submittedBy" not in job_view(unsubmitted).model_dump(exclude_none=True)
    assert job_view(unsubmitted).status is None
