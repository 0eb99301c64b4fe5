"""What one caller may make the operator hold: registration sizes, counts and rates.

Each limit is answered with a 4xx naming it (``LimitExceeded``), so that a worker that
hits one can say what to change.  The checks here are pure; the registry supplies the
counts (``check_pool_room``, ``check_identity_room``) and ``registration_limiter`` the
rate.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from shiftboss.jobs.params import check_schema, count_patterns
from shiftboss.workers.ratelimit import RateLimiter
from worker_runtime.protocol import RegisterRequest

SCHEMA_FIELDS = ("input_schema", "output_schema")


@dataclass(frozen=True)
class RegistrationLimits:
    #: Bytes of compact JSON in one skill schema (``input_schema`` or ``output_schema``).
    #: The schema of a model with a few hundred fields fits in 64 KiB.
    max_schema_bytes: int = 64 * 1024
    #: Bytes of all the schemas of one registration: a worker's memory footprint in the
    #: operator, held as long as the worker is registered.
    max_registration_schema_bytes: int = 256 * 1024
    #: Regexes (``pattern`` values, ``patternProperties`` keys) in one registration's
    #: schemas.  Compiling one costs up to about 0.3 ms of the operator's event loop and
    #: 0.1 MiB (``shiftboss.jobs.params.REGEX_SIZE_LIMIT``): 128 keep a registration
    #: under 50 ms.
    max_patterns_per_registration: int = 128
    #: Workers registered in one pool at a time; pools are scaled to tens, and a
    #: thousand workers long-polling one pool would be a misconfiguration.
    max_workers_per_pool: int = 512
    #: Worker ids held by one external service account (a pod holds only its own name).
    max_ids_per_service_account: int = 256
    #: Registrations one identity may send at once, then ``registrations_per_second``
    #: on average: a worker registers once at start and again after an operator restart.
    registration_burst: int = 60
    registrations_per_second: float = 1.0
    #: Identities whose registration rate is tracked at once (bounded memory).
    max_tracked_identities: int = 10_000


class LimitExceeded(Exception):
    """A request beyond a limit: the HTTP status, an error code, and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def check_registration(request: RegisterRequest, limits: RegistrationLimits) -> None:
    """Refuse a registration whose schemas are too big, too many regexes or unsafe."""
    total_bytes = total_patterns = 0
    for index, skill in enumerate(request.skills):
        for name in SCHEMA_FIELDS:
            schema: dict[str, Any] = getattr(skill, name)
            field = f"skills.{index}.{name}"
            size = len(json.dumps(schema, separators=(",", ":")).encode())
            if size > limits.max_schema_bytes:
                raise LimitExceeded(
                    413,
                    "schema_too_large",
                    f"the {name} of skill {skill.name!r} is {_kib(size)} of JSON, over the "
                    f"limit of {_kib(limits.max_schema_bytes)} per schema: describe the "
                    "params more loosely or split the skill",
                    field,
                )
            total_bytes += size
            if total_bytes > limits.max_registration_schema_bytes:
                raise LimitExceeded(
                    413,
                    "schemas_too_large",
                    f"the schemas of this registration are over "
                    f"{_kib(limits.max_registration_schema_bytes)} of JSON in all (reached at "
                    f"the {name} of skill {skill.name!r}): register fewer skills per worker "
                    "or smaller schemas",
                    field,
                )
            total_patterns += count_patterns(schema)
            if total_patterns > limits.max_patterns_per_registration:
                raise LimitExceeded(
                    413,
                    "too_many_patterns",
                    f"the schemas of this registration hold over "
                    f"{limits.max_patterns_per_registration} regexes ('pattern', "
                    f"'patternProperties'; reached at the {name} of skill {skill.name!r}): "
                    "use enum, format or length bounds where they do",
                    field,
                )
    for index, skill in enumerate(request.skills):
        for name in SCHEMA_FIELDS:
            problem = check_schema(getattr(skill, name))
            if problem is not None:
                raise LimitExceeded(
                    422,
                    "invalid_schema",
                    f"the {name} of skill {skill.name!r} cannot be used: {problem}",
                    f"skills.{index}.{name}",
                )


def check_pool_room(pool: str, registered: int, limits: RegistrationLimits) -> None:
    """Refuse a new worker for ``pool`` when it already has ``registered`` workers."""
    if registered >= limits.max_workers_per_pool:
        raise LimitExceeded(
            409,
            "worker_limit",
            f"pool {pool!r} already has {registered} registered workers, the limit: a "
            "worker is forgotten four leases after its last heartbeat",
            "pool",
        )


def check_identity_room(service_account: str, held: int, limits: RegistrationLimits) -> None:
    """Refuse a new worker id for an external service account that holds ``held``."""
    if held >= limits.max_ids_per_service_account:
        raise LimitExceeded(
            409,
            "worker_limit",
            f"service account {service_account!r} already holds {held} worker ids, the "
            "limit: reuse the ids of workers that stopped (a worker id is forgotten four "
            "leases after its last heartbeat)",
            "worker_id",
        )


def registration_limiter(limits: RegistrationLimits) -> RateLimiter:
    """Registrations per identity (key: ``WorkerIdentity.owner``)."""
    return RateLimiter(
        burst=limits.registration_burst,
        per_second=limits.registrations_per_second,
        max_keys=limits.max_tracked_identities,
    )


def rate_limited(retry_after: float) -> LimitExceeded:
    """The 429 for a registration refused by ``registration_limiter``."""
    return LimitExceeded(
        429,
        "rate_limited",
        f"too many registrations from this identity: retry in {math.ceil(retry_after)} s "
        "(a worker registers once at start, and again when the operator restarts)",
    )


def _kib(size: int) -> str:
    return f"{size / 1024:.0f} KiB" if size >= 1024 else f"{size} bytes"
