"""Registration limits (``shiftboss.workers.limits``): sizes, regexes, safe schemas, counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shiftboss.workers.limits import (
    LimitExceeded,
    RegistrationLimits,
    check_identity_room,
    check_pool_room,
    check_registration,
    rate_limited,
    registration_limiter,
)
from worker_runtime.protocol import RegisterRequest

LIMITS = RegistrationLimits()


def registration(*schemas: tuple[dict[str, Any], dict[str, Any]]) -> RegisterRequest:
    return RegisterRequest(
        pool="pool-a",
        worker_id="w1",
        skills=[
            {"name": f"skill{i}", "input_schema": given, "output_schema": returned}
            for i, (given, returned) in enumerate(schemas)
        ],
    )


def sized(kib: int) -> dict[str, Any]:
    """A schema of exactly ``kib`` KiB of compact JSON."""
    schema = {"type": "object", "description": ""}
    schema["description"] = "x" * (kib * 1024 - len(json.dumps(schema, separators=(",", ":"))))
    return schema


def refusal(request: RegisterRequest, limits: RegistrationLimits = LIMITS) -> LimitExceeded:
    with pytest.raises(LimitExceeded) as refused:
        check_registration(request, limits)
    return refused.value


def test_the_defaults_are_the_documented_limits():
    assert LIMITS.max_schema_bytes == 64 * 1024
    assert LIMITS.max_registration_schema_bytes == 256 * 1024
    assert LIMITS.max_workers_per_pool == 512
    assert LIMITS.max_ids_per_service_account == 256
    assert (LIMITS.registration_burst, LIMITS.registrations_per_second) == (60, 1.0)


def test_a_registration_within_the_limits_passes():
    pydantic_like = {
        "$defs": {"Size": {"properties": {"w": {"type": "integer"}}, "type": "object"}},
        "properties": {
            "url": {"type": "string", "pattern": "^https?://"},
            "size": {"$ref": "#/$defs/Size"},
        },
        "required": ["url"],
        "type": "object",
    }

    check_registration(registration((pydantic_like, {}), (sized(60), sized(60))), LIMITS)


def test_a_schema_over_64_kib_is_413_naming_the_skill_the_schema_and_the_limit():
    problem = refusal(registration(({}, {}), ({}, sized(70))))

    assert (problem.status, problem.code, problem.field) == (
        413,
        "schema_too_large",
        "skills.1.output_schema",
    )
    assert "the output_schema of skill 'skill1' is 70 KiB" in problem.message
    assert "limit of 64 KiB per schema" in problem.message


def test_schemas_over_256_kib_in_all_are_413_where_the_total_is_reached():
    problem = refusal(registration(*[(sized(60), {}) for _ in range(5)]))

    assert (problem.status, problem.code, problem.field) == (
        413,
        "schemas_too_large",
        "skills.4.input_schema",
    )
    assert "over 256 KiB of JSON in all" in problem.message
    assert "skill 'skill4'" in problem.message


def test_too_many_regexes_are_413():
    many = {"properties": {f"p{i}": {"type": "string", "pattern": f"^x{i}$"} for i in range(100)}}
    keys = {"patternProperties": {f"^y{i}$": {} for i in range(30)}}

    problem = refusal(registration((many, keys)))

    assert (problem.status, problem.code, problem.field) == (
        413,
        "too_many_patterns",
        "skills.0.output_schema",
    )
    assert "over 128 regexes" in problem.message


@pytest.mark.parametrize(
    ("schema", "explained"),
    [
        (
            {"properties": {"name": {"type": "string", "pattern": "^(?!admin).*$"}}},
            '#/properties/name/pattern: the regex "^(?!admin).*$" uses look-around',
        ),
        (
            {"type": "string", "pattern": "^(a)\\1$"},
            '#/pattern: the regex "^(a)\\\\1$" uses a back-reference',
        ),
        ({"$ref": "https://example.com/schema.json"}, "points outside the schema"),
        ({"type": "integer", "minimum": "zero"}, '#/minimum: "zero" is not of type "number"'),
    ],
)
def test_a_schema_that_cannot_be_evaluated_safely_is_422_naming_skill_schema_and_problem(
    schema, explained
):
    problem = refusal(registration(({}, {}), (schema, {})))

    assert (problem.status, problem.code, problem.field) == (
        422,
        "invalid_schema",
        "skills.1.input_schema",
    )
    assert problem.message.startswith("the input_schema of skill 'skill1' cannot be used: ")
    assert explained in problem.message


def test_limits_are_settings():
    tight = RegistrationLimits(max_schema_bytes=1024)

    assert refusal(registration((sized(2), {})), tight).code == "schema_too_large"


def test_a_full_pool_is_409_worker_limit():
    check_pool_room("pool-a", 511, LIMITS)

    with pytest.raises(LimitExceeded) as refused:
        check_pool_room("pool-a", 512, LIMITS)

    problem = refused.value
    assert (problem.status, problem.code, problem.field) == (409, "worker_limit", "pool")
    assert "pool 'pool-a' already has 512 registered workers, the limit" in problem.message


def test_a_service_account_holding_256_ids_is_409_worker_limit():
    check_identity_room("robot", 255, LIMITS)

    with pytest.raises(LimitExceeded) as refused:
        check_identity_room("robot", 256, LIMITS)

    problem = refused.value
    assert (problem.status, problem.code, problem.field) == (409, "worker_limit", "worker_id")
    assert "service account 'robot' already holds 256 worker ids" in problem.message


def test_registrations_per_identity_a_burst_of_60_then_one_per_second():
    limiter = registration_limiter(LIMITS)

    assert all(limiter.try_acquire("pod:team-a/uid-1") is None for _ in range(60))
    wait = limiter.try_acquire("pod:team-a/uid-1")
    assert wait is not None and 0.9 < wait <= 1.0
    assert limiter.try_acquire("pod:team-a/uid-2") is None

    problem = rate_limited(wait)
    assert (problem.status, problem.code) == (429, "rate_limited")
    assert "retry in 1 s" in problem.message
