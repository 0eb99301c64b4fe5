"""Who is calling: a worker's projected service-account token, verified by TokenReview.

A token bound to a pod (the projected token of a worker pod) names that pod; the pod's
``shiftboss.io/pool`` label says which pool it may act for.  A token not bound to a pod
(an external worker's ``kubectl create token``) may act for the pools of its namespace
that run under its service account.  Reviews are cached until shortly before the
token expires, so a busy worker costs one TokenReview, not one per request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass

from shiftboss.api.workerpool import POOL_LABEL
from shiftboss.kube.client import PODS, TOKENREVIEWS, ApiError, KubeClient

AUDIENCE = "shiftboss"
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
MAX_CACHE_SECONDS = 600.0
MAX_CACHED_TOKENS = 10_000


class AuthError(Exception):
    """401: no token, or a token the API server does not accept for our audience."""


@dataclass(frozen=True)
class WorkerIdentity:
    namespace: str
    service_account: str
    pod_name: str | None = None
    pod_uid: str | None = None
    #: The pool of the pod the token is bound to (None for tokens not bound to a pod).
    pool: str | None = None


class Authenticator:
    def __init__(self, client: KubeClient, *, audience: str = AUDIENCE) -> None:
        self.client, self.audience = client, audience
        self._cache: dict[str, tuple[WorkerIdentity, float]] = {}
        self.reviews = 0

    async def identify(self, authorization: str | None) -> WorkerIdentity:
        if (
            not authorization
            or not authorization.startswith("Bearer ")
            or len(authorization) > 16384
        ):
            raise AuthError(
                "missing bearer token: send 'Authorization: Bearer <service-account token>'"
            )
        token = authorization.removeprefix("Bearer ").strip()
        if not token or not token.isascii() or not token.isprintable():
            raise AuthError("malformed bearer token: a service-account token is printable ASCII")
        key = hashlib.sha256(token.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        identity = await self._review(token)
        if len(self._cache) >= MAX_CACHED_TOKENS:
            self._cache.clear()
        self._cache[key] = (identity, time.monotonic() + _cache_seconds(token))
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
        status = review.get("status", {})
        if not status.get("authenticated"):
            raise AuthError(
                f"token rejected: {status.get('error') or 'not authenticated'} "
                f"(workers need a service-account token with audience {self.audience!r})"
            )
        user = status.get("user", {})
        parts = user.get("username", "").split(":")
        if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"]:
            raise AuthError(f"{user.get('username')!r} is not a service account")
        namespace, service_account = parts[2], parts[3]
        extra = user.get("extra") or {}
        pod_name = (extra.get(POD_NAME_KEY) or [None])[0]
        pod_uid = (extra.get(POD_UID_KEY) or [None])[0]
        pool = None
        if pod_name:
            try:
                pod = await self.client.get(PODS.path(namespace, pod_name))
            except ApiError as exc:
                if exc.not_found:
                    raise AuthError(
                        f"the token's pod {namespace}/{pod_name} no longer exists"
                    ) from exc
                raise
            if pod["metadata"]["uid"] != pod_uid:
                raise AuthError(f"the token's pod {namespace}/{pod_name} was replaced")
            pool = (pod["metadata"].get("labels") or {}).get(POOL_LABEL)
        return WorkerIdentity(namespace, service_account, pod_name, pod_uid, pool)


def _cache_seconds(token: str) -> float:
    """Until 30 s before the token's ``exp`` (read, not trusted: the review vouched for it)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return max(0.0, min(MAX_CACHE_SECONDS, float(claims["exp"]) - time.time() - 30))
    except (IndexError, ValueError, KeyError, TypeError):
        return 60.0
