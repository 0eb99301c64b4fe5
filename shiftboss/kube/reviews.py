"""May this user do that?  The API server's SubjectAccessReview, asked on a caller's behalf.

The operator acts with its own credentials for callers that authenticated to it (the
submission API), so before it acts it asks the API server whether the *caller* may:
RBAC (or whatever authorizers the cluster runs) stays the only source of permission.

Allowed answers are kept for a few seconds (a caller polling a job costs one review per
``allowed_cache_seconds``, and a revoked permission is noticed within that time);
refusals are not kept, so a permission just granted works at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, Field

from shiftboss.kube.client import Resource
from shiftboss.workers.ttlcache import TtlCache

SUBJECTACCESSREVIEWS = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False
)


class ReviewApi(Protocol):
    async def create(self, path: str, body: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ReviewUser:
    """Who is asking, as the API server's authenticators described them."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str | None = None
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class ResourceAction:
    """A verb on a resource type (or one named object) in a namespace."""

    verb: str
    group: str
    resource: str
    namespace: str
    name: str | None = None

    def describe(self) -> str:
        """``create jobs.shiftboss.io in namespace team-a`` (``get jobs.shiftboss.io x ...``)."""
        kind = f"{self.resource}.{self.group}" if self.group else self.resource
        target = f"{kind} {self.name!r}" if self.name else kind
        return f"{self.verb} {target} in namespace {self.namespace!r}"


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    #: The authorizer's words (RBAC usually says nothing when it denies).
    reason: str = ""


class _ReviewStatus(BaseModel):
    allowed: bool = False
    denied: bool = False
    reason: str = ""
    evaluation_error: str = Field("", alias="evaluationError")


def review_request(user: ReviewUser, action: ResourceAction) -> dict[str, Any]:
    """The SubjectAccessReview asking whether ``user`` may perform ``action``."""
    attributes = {
        "verb": action.verb,
        "group": action.group,
        "resource": action.resource,
        "namespace": action.namespace,
    }
    if action.name:
        attributes["name"] = action.name
    spec: dict[str, Any] = {
        "user": user.username,
        "groups": list(user.groups),
        "extra": {key: list(values) for key, values in user.extra},
        "resourceAttributes": attributes,
    }
    if user.uid:
        spec["uid"] = user.uid
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": spec,
    }


def decision(answer: dict[str, Any]) -> AccessDecision:
    """What a SubjectAccessReview's answer says; anything but an explicit ``allowed``
    (an authorizer's error included) is a refusal."""
    status = _ReviewStatus.model_validate(answer.get("status") or {})
    reason = "; ".join(text for text in (status.reason, status.evaluation_error) if text)
    return AccessDecision(allowed=status.allowed and not status.denied, reason=reason)


@dataclass
class AccessReviewer:
    client: ReviewApi
    allowed_cache_seconds: float = 5.0
    max_cached: int = 10_000
    clock: Callable[[], float] = time.monotonic
    #: SubjectAccessReviews sent.
    reviews: int = 0
    _allowed: TtlCache[AccessDecision] = field(init=False)

    def __post_init__(self) -> None:
        self._allowed = TtlCache(self.max_cached)

    async def review(self, user: ReviewUser, action: ResourceAction) -> AccessDecision:
        """Whether ``user`` may perform ``action``; API server failures propagate."""
        key = repr((user, action))
        cached = self._allowed.get(key, self.clock())
        if cached is not None:
            return cached
        self.reviews += 1
        answer = decision(
            await self.client.create(SUBJECTACCESSREVIEWS.path(), review_request(user, action))
        )
        if answer.allowed:
            self._allowed.put(key, answer, self.clock() + self.allowed_cache_seconds)
        return answer
