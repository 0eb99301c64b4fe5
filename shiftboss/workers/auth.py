"""Who is calling: a worker's projected service-account token, verified by TokenReview.

A token bound to a pod (the projected token of a worker pod) names that pod; the pod's
``shiftboss.io/pool`` label says which pool it may act for.  A token not bound to a pod
(an external worker's ``kubectl create token``) may act for the pools of its namespace
that run under its service account.

Reviews cost the API server, so the answers are kept: an accepted token until shortly
before it expires (or its pod goes, see ``forget_pod``), a refused one for half a
minute.  A token that is not even shaped like a service-account token for our audience
is refused without a review, and a client address whose requests keep failing is
answered ``RateLimited`` without one: junk costs the API server almost nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, Field

from shiftboss.api.workerpool import POOL_LABEL
from shiftboss.kube.client import PODS, TOKENREVIEWS, ApiError
from shiftboss.workers.jwt import MalformedToken, TokenClaims, precheck
from shiftboss.workers.ratelimit import RateLimiter
from shiftboss.workers.ttlcache import TtlCache

AUDIENCE = "shiftboss"
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
#: A bearer token longer than this is refused unread (service-account tokens are ~1 KiB).
MAX_TOKEN_BYTES = 16 * 1024
#: Requests without a known client address share one rate-limit bucket.
UNKNOWN_PEER = "unknown"


class AuthError(Exception):
    """401: no token, or a token the API server does not accept for our audience."""


class RateLimited(Exception):
    """429: too many failed authentications from this client address; retry later."""

    def __init__(self, retry_after: float, message: str) -> None:
        super().__init__(message)
        #: Seconds until the next attempt can be reviewed (for ``Retry-After``).
        self.retry_after = retry_after


class KubeApi(Protocol):
    """The two calls a review makes (``shiftboss.kube.client.KubeClient`` has both)."""

    async def create(self, path: str, body: Any) -> dict[str, Any]: ...

    async def get(self, path: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class AuthSettings:
    #: Seconds an accepted token is trusted without a new review, at most (never past
    #: 30 s before the token's own expiry): a revoked service account or deleted secret
    #: is noticed within this time.
    max_cache_seconds: float = 600.0
    #: Accepted tokens remembered (one per worker, or a few while tokens rotate); the
    #: oldest are forgotten past this and reviewed again when they come back.
    max_cached_tokens: int = 10_000
    #: Seconds a refused token is remembered: a junk token repeated costs one review per
    #: 30 s, and a token refused during an API server hiccup is reviewed again soon.
    failure_cache_seconds: float = 30.0
    max_cached_failures: int = 10_000
    #: Requests that need a review (not vouched for by a cached one) a client address may
    #: send at once; a failed one keeps its token, a successful review gives it back, so
    #: only failures count.  Five covers a worker's register, claim and heartbeat racing
    #: with a wrong token.
    peer_burst: int = 5
    #: Failed requests per second a client address may keep sending after its burst.
    peer_per_second: float = 1.0
    #: Client addresses tracked; beyond this, new addresses share one bucket.
    max_tracked_peers: int = 10_000
    #: Reviews the whole operator may start at once, then per second, whatever the
    #: number of addresses junk comes from.  A successful review gives its token back,
    #: so workers starting together are not held back by it.
    review_burst: int = 100
    reviews_per_second: float = 10.0
    #: Seconds of clock skew tolerated when judging a token's ``exp`` before the review
    #: (the API server judges it again, by its own clock).
    clock_skew_seconds: float = 60.0


@dataclass(frozen=True)
class WorkerIdentity:
    namespace: str
    service_account: str
    pod_name: str | None = None
    pod_uid: str | None = None
    #: The pool of the pod the token is bound to (None for tokens not bound to a pod).
    pool: str | None = None

    @property
    def owner(self) -> str:
        """Stable and unique per identity: the pod (by uid) or the service account."""
        if self.pod_uid is not None:
            return f"pod:{self.namespace}/{self.pod_uid}"
        return f"sa:{self.namespace}/{self.service_account}"


class _UserInfo(BaseModel):
    username: str = ""
    extra: dict[str, list[str]] = Field(default_factory=dict)


class _ReviewStatus(BaseModel):
    authenticated: bool = False
    error: str = ""
    audiences: list[str] | None = None
    user: _UserInfo = Field(default_factory=_UserInfo)


class _PodMeta(BaseModel):
    uid: str
    labels: dict[str, str] = Field(default_factory=dict)


class _PodStatus(BaseModel):
    phase: str = ""


class _Pod(BaseModel):
    metadata: _PodMeta
    status: _PodStatus = Field(default_factory=_PodStatus)


class Authenticator:
    def __init__(
        self,
        client: KubeApi,
        *,
        audience: str = AUDIENCE,
        settings: AuthSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.audience = client, audience
        self.settings = settings = settings or AuthSettings()
        self._clock, self._wall_clock = clock, wall_clock
        self._accepted: TtlCache[WorkerIdentity] = TtlCache(settings.max_cached_tokens)
        self._refused: TtlCache[str] = TtlCache(settings.max_cached_failures)
        self._peers = RateLimiter(
            burst=settings.peer_burst,
            per_second=settings.peer_per_second,
            max_keys=settings.max_tracked_peers,
            clock=clock,
        )
        self._review_budget = RateLimiter(
            burst=settings.review_burst,
            per_second=settings.reviews_per_second,
            max_keys=1,
            clock=clock,
        )
        #: One review at a time per token: concurrent requests with it share the answer.
        self._inflight: dict[str, asyncio.Task[WorkerIdentity]] = {}
        #: Bumped by ``forget_pod``: a review that started before must not cache its pod.
        self._pods_forgotten = 0
        #: TokenReviews sent (the cost this module exists to keep low).
        self.reviews = 0

    async def identify(
        self, authorization: str | None, *, peer: str | None = None
    ) -> WorkerIdentity:
        """The caller behind an ``Authorization`` header, sent from address ``peer``
        (``request.remote``; without one, all such callers share one rate limit).

        Raises ``AuthError`` (401) or ``RateLimited`` (429); an unreachable API server
        raises its own error (``ApiError``, ``httpx.HTTPError``) and is not held against
        the caller.
        """
        token = _bearer(authorization)
        key = hashlib.sha256(token.encode()).hexdigest() if token else ""
        identity = self._accepted.get(key, self._clock()) if key else None
        if identity is not None:
            return identity
        peer = peer or UNKNOWN_PEER
        wait = self._peers.try_acquire(peer)
        if wait is not None:
            raise RateLimited(
                wait,
                f"too many failed authentications from {peer}: retry in {math.ceil(wait)} s "
                "with a valid service-account token",
            )
        if not token:
            raise AuthError(
                "missing or malformed bearer token: send 'Authorization: Bearer "
                "<service-account token>' (printable ASCII, at most "
                f"{MAX_TOKEN_BYTES} bytes)"
            )
        refusal = self._refused.get(key, self._clock())
        if refusal is not None:
            raise AuthError(refusal)
        try:
            claims = precheck(
                token,
                audience=self.audience,
                now=self._wall_clock(),
                leeway_seconds=self.settings.clock_skew_seconds,
            )
        except MalformedToken as exc:
            raise AuthError(str(exc)) from None
        try:
            identity = await asyncio.shield(self._review_once(key, token, claims))
        except RateLimited:
            self._peers.refund(peer)  # the operator's own budget, not this address's doing
            raise
        except (AuthError, asyncio.CancelledError):
            raise
        except Exception:
            self._peers.refund(peer)  # the API server failed, not the caller
            raise
        self._peers.refund(peer)
        return identity

    def forget_pod(self, namespace: str, pod_name: str) -> int:
        """Drop every accepted token bound to this pod (call when it is deleted or ends),
        so that its next request is reviewed again; returns how many were dropped."""
        self._pods_forgotten += 1
        return self._accepted.drop_where(
            lambda identity: identity.namespace == namespace and identity.pod_name == pod_name
        )

    def _review_once(
        self, key: str, token: str, claims: TokenClaims
    ) -> asyncio.Task[WorkerIdentity]:
        task = self._inflight.get(key)
        if task is None:
            wait = self._review_budget.try_acquire("")
            if wait is not None:
                raise RateLimited(
                    wait,
                    f"the operator is refusing many tokens right now: retry in {math.ceil(wait)} s",
                )
            task = asyncio.ensure_future(self._review_and_remember(key, token, claims))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._settled(key, done))
        return task

    def _settled(self, key: str, task: asyncio.Task[WorkerIdentity]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have gone away

    async def _review_and_remember(
        self, key: str, token: str, claims: TokenClaims
    ) -> WorkerIdentity:
        forgotten_before = self._pods_forgotten
        try:
            identity = await self._review(token)
        except AuthError as exc:
            self._refused.put(key, str(exc), self._clock() + self.settings.failure_cache_seconds)
            raise
        except BaseException:
            self._review_budget.refund("")  # the API server failed, not the token
            raise
        self._review_budget.refund("")
        if identity.pod_name is None or self._pods_forgotten == forgotten_before:
            seconds = min(self.settings.max_cache_seconds, claims.expires - self._wall_clock() - 30)
            if seconds > 0:
                self._accepted.put(key, identity, self._clock() + seconds)
        return identity

    async def _review(self, token: str) -> WorkerIdentity:
        self.reviews += 1
        review = await self.client.create(
            TOKENREVIEWS.path(),
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token, "audiences": [self.audience]},
            },
        )
        status = _ReviewStatus.model_validate(review.get("status") or {})
        if not status.authenticated:
            raise AuthError(
                f"token rejected: {status.error or 'not authenticated'} "
                f"(workers need a service-account token with audience {self.audience!r})"
            )
        # An authenticator that ignores audiences answers without ours (Kubernetes
        # documents this check as the client's job): such a token is for someone else.
        if self.audience not in (status.audiences or []):
            raise AuthError(
                f"the API server did not confirm audience {self.audience!r} for this token: "
                f"create it with 'kubectl create token <service account> --audience "
                f"{self.audience}'"
            )
        parts = status.user.username.split(":")
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
            raise AuthError(f"{status.user.username!r} is not a service account")
        namespace, service_account = parts[2], parts[3]
        pod_name = _first(status.user.extra.get(POD_NAME_KEY))
        if pod_name is None:
            return WorkerIdentity(namespace, service_account)
        pod_uid = _first(status.user.extra.get(POD_UID_KEY))
        pool = await self._pod_pool(namespace, pod_name, pod_uid)
        return WorkerIdentity(namespace, service_account, pod_name, pod_uid, pool)

    async def _pod_pool(self, namespace: str, pod_name: str, pod_uid: str | None) -> str | None:
        """The pool of the pod a token is bound to, which must still be running."""
        try:
            pod = _Pod.model_validate(await self.client.get(PODS.path(namespace, pod_name)))
        except ApiError as exc:
            if exc.not_found:
                raise AuthError(f"the token's pod {namespace}/{pod_name} no longer exists") from exc
            raise
        if pod.metadata.uid != pod_uid:
            raise AuthError(f"the token's pod {namespace}/{pod_name} was replaced")
        if pod.status.phase in ("Succeeded", "Failed"):
            raise AuthError(f"the token's pod {namespace}/{pod_name} has ended")
        return pod.metadata.labels.get(POOL_LABEL)


def _bearer(authorization: str | None) -> str:
    """The token of a well-formed ``Bearer`` header, else an empty string."""
    if not authorization or len(authorization) > MAX_TOKEN_BYTES + 7:
        return ""
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.isascii() or not token.isprintable() or " " in token:
        return ""
    return token


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None
