"""A stand-in for the API server's TokenReview and pod GET, and tokens shaped like its own.

``FakeKube`` answers as kube-apiserver v1.37 does (the answers below were copied from a
real one): a granted token is ``authenticated`` with the audiences asked for, a pod-bound
one carries the pod's name and uid in ``extra``; anything else is refused with an
``error``.  It counts the reviews, and can hold them (``gate``) or fail them
(``failures``) to show concurrency and outages.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from shiftboss.kube.client import ApiError

NOW = 1_800_000_000.0  # a wall-clock time well after every token's iat
AUDIENCE = "shiftboss"
_serial = itertools.count()


def _b64(doc: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def make_token(
    *,
    namespace: str = "team-a",
    service_account: str = "worker",
    audiences: list[str] | None = None,
    expires: float = NOW + 3600,
    alg: str = "ES256",
    subject: str | None = None,
) -> str:
    """A JWT shaped like a service-account token (unique, unsigned: the fake checks it)."""
    claims = {
        "aud": [AUDIENCE] if audiences is None else audiences,
        "exp": expires,
        "iat": NOW - 60,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "jti": f"jti-{next(_serial)}",
        "sub": subject or f"system:serviceaccount:{namespace}:{service_account}",
    }
    return f"{_b64({'alg': alg, 'kid': 'k1'})}.{_b64(claims)}.c2lnbmF0dXJl"


@dataclass
class Grant:
    username: str
    audiences: list[str]
    pod: tuple[str, str] | None = None  # (name, uid)
    #: Like a webhook authenticator that knows no audiences: authenticated whatever the
    #: review asked for, with the token's own audiences (Kubernetes leaves it to the
    #: client to check ``status.audiences``).
    ignores_audiences: bool = False


@dataclass
class FakeKube:
    grants: dict[str, Grant] = field(default_factory=dict)
    #: (namespace, name) -> pod document
    pods: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    reviews: int = 0
    pod_gets: int = 0
    #: Raised, one per review, before answering (an API server outage).
    failures: list[Exception] = field(default_factory=list)
    #: When set, every review waits for it (to hold reviews in flight).
    gate: asyncio.Event | None = None

    def grant(
        self,
        token: str,
        *,
        namespace: str = "team-a",
        service_account: str = "worker",
        audiences: list[str] | None = None,
        pod: tuple[str, str] | None = None,
        ignores_audiences: bool = False,
    ) -> str:
        self.grants[token] = Grant(
            f"system:serviceaccount:{namespace}:{service_account}",
            [AUDIENCE] if audiences is None else audiences,
            pod,
            ignores_audiences,
        )
        return token

    def add_pod(
        self, namespace: str, name: str, uid: str, *, pool: str = "pool-a", phase: str = "Running"
    ) -> None:
        self.pods[(namespace, name)] = {
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "labels": {"shiftboss.io/pool": pool},
            },
            "status": {"phase": phase},
        }

    async def create(self, path: str, body: Any) -> dict[str, Any]:
        assert path == "/apis/authentication.k8s.io/v1/tokenreviews", path
        self.reviews += 1
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)
        if self.failures:
            raise self.failures.pop(0)
        grant = self.grants.get(body["spec"]["token"])
        asked = body["spec"].get("audiences") or []
        if grant is None:
            return {
                "status": {
                    "user": {},
                    "error": "[invalid bearer token, square/go-jose: error in cryptographic primitive]",
                }
            }
        if grant.ignores_audiences:
            asked = []
        elif asked and not set(asked) & set(grant.audiences):
            return {
                "status": {
                    "user": {},
                    "error": "[invalid bearer token, token audiences is invalid]",
                }
            }
        extra: dict[str, list[str]] = {"authentication.kubernetes.io/credential-id": ["JTI=x"]}
        if grant.pod is not None:
            namespace = grant.username.split(":")[2]
            if (namespace, grant.pod[0]) not in self.pods:
                return {"status": {"user": {}, "error": "[invalid bearer token, pod not found]"}}
            extra["authentication.kubernetes.io/pod-name"] = [grant.pod[0]]
            extra["authentication.kubernetes.io/pod-uid"] = [grant.pod[1]]
        return {
            "status": {
                "authenticated": True,
                "user": {
                    "username": grant.username,
                    "groups": ["system:authenticated"],
                    "extra": extra,
                },
                "audiences": sorted(set(asked) & set(grant.audiences))
                if asked
                else grant.audiences,
            }
        }

    async def get(self, path: str) -> dict[str, Any]:
        self.pod_gets += 1
        await asyncio.sleep(0)
        parts = path.split("/")  # /api/v1/namespaces/<ns>/pods/<name>
        pod = self.pods.get((parts[4], parts[6]))
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{parts[6]}" not found')
        return pod


class FakeClock:
    """Monotonic and wall-clock time that move only when a test says so."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def monotonic(self) -> float:
        return 1000.0 + self.elapsed

    def wall(self) -> float:
        return NOW + self.elapsed

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds
