"""The shape of a service-account token, checked before anyone is asked about it.

A Kubernetes service-account token is a signed JWT: three base64url segments, a header
naming its ``alg``, claims with ``aud``, ``exp``, ``iss`` and a ``sub`` of the form
``system:serviceaccount:<namespace>:<name>``.  Anything else cannot pass a TokenReview,
so it is refused here without one.  This check is no substitute for the review: the
signature is not verified and a token of the right shape is still reviewed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


class MalformedToken(Exception):
    """The bearer token cannot be a service-account token for us; the message says why."""


@dataclass(frozen=True)
class TokenClaims:
    """What a token says about itself (unverified until a TokenReview vouches for it)."""

    audiences: tuple[str, ...]
    expires: float
    issuer: str
    subject: str


def precheck(token: str, *, audience: str, now: float, leeway_seconds: float) -> TokenClaims:
    """The token's claims if it is shaped like a service-account token for ``audience``,
    unexpired at ``now`` (a wall-clock time) give or take ``leeway_seconds`` of skew."""
    segments = token.split(".")
    if len(segments) != 3 or not all(_SEGMENT.fullmatch(s) for s in segments):
        raise MalformedToken(
            "the bearer token is not a JWT (three base64url segments separated by '.'): "
            "send a service-account token"
        )
    header, claims = _json_object(segments[0], "header"), _json_object(segments[1], "claims")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() in ("", "none"):
        raise MalformedToken("the token's header names no signing 'alg': it is not signed")
    audiences = _audiences(claims.get("aud"))
    if audience not in audiences:
        raise MalformedToken(
            f"the token is for audience {_short(audiences)}, not {audience!r}: create one "
            f"with 'kubectl create token <service account> --audience {audience}' or project "
            f"it with audience {audience!r}"
        )
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise MalformedToken("the token has no numeric 'exp' (expiry) claim")
    if expires + leeway_seconds <= now:
        raise MalformedToken("the token has expired: request a new one")
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not isinstance(issuer, str) or not issuer:
        raise MalformedToken("the token has no 'iss' (issuer) claim")
    if not isinstance(subject, str) or not _is_service_account(subject):
        raise MalformedToken(
            f"the token's subject {_short(subject)} is not a service account "
            f"('{SERVICE_ACCOUNT_PREFIX}<namespace>:<name>')"
        )
    return TokenClaims(audiences, float(expires), issuer, subject)


def _json_object(segment: str, part: str) -> dict[str, object]:
    try:
        value = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (binascii.Error, ValueError):
        raise MalformedToken(f"the token's {part} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise MalformedToken(f"the token's {part} is not a JSON object")
    return value


def _audiences(aud: object) -> tuple[str, ...]:
    """``aud`` is a string or a list of strings (RFC 7519, section 4.1.3)."""
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    return ()


def _is_service_account(subject: str) -> bool:
    namespace, _, name = subject.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
    return subject.startswith(SERVICE_ACCOUNT_PREFIX) and bool(namespace) and bool(name)


def _short(value: object) -> str:
    """A claim quoted in a message, cut short: the caller chose it."""
    text = repr(list(value) if isinstance(value, tuple) else value)
    return text if len(text) <= 80 else text[:77] + "..."
