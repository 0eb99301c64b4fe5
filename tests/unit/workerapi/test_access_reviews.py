"""SubjectAccessReviews (``shiftboss.kube.reviews``): the request sent, the answer read,
and which answers are kept."""

from __future__ import annotations

from typing import Any

from shiftboss.kube.reviews import (
    AccessReviewer,
    ResourceAction,
    ReviewUser,
    decision,
    review_request,
)
from shiftboss.workerapi.submissions import review_user
from shiftboss.workers.auth import WorkerIdentity

USER = ReviewUser(
    "system:serviceaccount:team-a:ci",
    ("system:serviceaccounts", "system:authenticated"),
    uid="u-1",
    extra=(("authentication.kubernetes.io/pod-name", ("ci-0",)),),
)
CREATE = ResourceAction("create", "shiftboss.io", "jobs", "team-a")
GET = ResourceAction("get", "shiftboss.io", "jobs", "team-a", "add-1")


def test_request_names_the_user_and_the_resource():
    assert review_request(USER, CREATE) == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "system:serviceaccount:team-a:ci",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "uid": "u-1",
            "extra": {"authentication.kubernetes.io/pod-name": ["ci-0"]},
            "resourceAttributes": {
                "verb": "create",
                "group": "shiftboss.io",
                "resource": "jobs",
                "namespace": "team-a",
            },
        },
    }
    attributes = review_request(ReviewUser("u"), GET)["spec"]["resourceAttributes"]
    assert attributes["name"] == "add-1"
    assert "uid" not in review_request(ReviewUser("u"), GET)["spec"]


def test_descriptions_name_verb_resource_and_namespace():
    assert CREATE.describe() == "create jobs.shiftboss.io in namespace 'team-a'"
    assert GET.describe() == "get jobs.shiftboss.io 'add-1' in namespace 'team-a'"


def test_answers():
    allowed = {"status": {"allowed": True, "reason": 'RBAC: allowed by RoleBinding "x"'}}
    assert decision(allowed).allowed
    assert not decision({"status": {"allowed": False}}).allowed
    assert not decision({}).allowed
    # An authorizer that denies outright wins over one that allowed.
    assert not decision({"status": {"allowed": True, "denied": True}}).allowed
    broken = decision({"status": {"allowed": False, "evaluationError": "webhook down"}})
    assert (broken.allowed, broken.reason) == (False, "webhook down")


def test_review_user_of_a_service_account_token():
    pod_bound = review_user(WorkerIdentity("team-a", "ci", "ci-0", "uid-0", "pool"))
    assert pod_bound.username == "system:serviceaccount:team-a:ci"
    assert pod_bound.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:team-a",
        "system:authenticated",
    )
    assert dict(pod_bound.extra) == {
        "authentication.kubernetes.io/pod-name": ("ci-0",),
        "authentication.kubernetes.io/pod-uid": ("uid-0",),
    }
    assert review_user(WorkerIdentity("team-a", "ci")).extra == ()


class FakeReviews:
    def __init__(self) -> None:
        self.allowed: set[tuple[str, str]] = set()
        self.sent: list[dict[str, Any]] = []

    async def create(self, path: str, body: Any) -> dict[str, Any]:
        assert path == "/apis/authorization.k8s.io/v1/subjectaccessreviews"
        self.sent.append(body)
        spec = body["spec"]
        ok = (spec["user"], spec["resourceAttributes"]["verb"]) in self.allowed
        return {"status": {"allowed": ok}}


async def test_allowed_answers_are_kept_a_few_seconds_refusals_not_at_all():
    now = [0.0]
    api = FakeReviews()
    reviewer = AccessReviewer(api, allowed_cache_seconds=5, clock=lambda: now[0])
    assert not (await reviewer.review(USER, CREATE)).allowed
    api.allowed.add((USER.username, "create"))
    assert (await reviewer.review(USER, CREATE)).allowed  # granted: works at once
    assert (await reviewer.review(USER, CREATE)).allowed
    assert reviewer.reviews == 2
    assert not (await reviewer.review(USER, GET)).allowed  # another verb: its own review
    api.allowed.clear()
    now[0] = 4.9
    assert (await reviewer.review(USER, CREATE)).allowed
    now[0] = 5.0
    assert not (await reviewer.review(USER, CREATE)).allowed  # revoked: noticed
    assert reviewer.reviews == 4
