"""The chart's `operator.agingSecondsPerLevel`: rendered as the operator's
SHIFTBOSS_AGING_SECONDS_PER_LEVEL, and a rate the operator would refuse is refused by
the values schema before anything is installed."""

from __future__ import annotations

from typing import Any

import pytest
from chart_render import env_of, operator_container, render, render_error

from shiftboss.settings import OperatorSettings

VARIABLE = "SHIFTBOSS_AGING_SECONDS_PER_LEVEL"


def test_the_default_is_the_operators() -> None:
    env = env_of(operator_container(render()))
    assert env[VARIABLE] == "60"
    assert float(env[VARIABLE]) == OperatorSettings().aging_seconds_per_level


@pytest.mark.parametrize("rate", [1, 0.5, 86400])
def test_the_value_is_rendered_as_the_variable(rate: float) -> None:
    env = env_of(operator_container(render(**{"operator.agingSecondsPerLevel": rate})))
    assert float(env[VARIABLE]) == rate
    # ... in a form the operator reads back as the same rate.
    assert OperatorSettings(aging_seconds_per_level=env[VARIABLE]).aging_seconds_per_level == rate


@pytest.mark.parametrize(
    ("rate", "message"),
    [
        (0, "at '/operator/agingSecondsPerLevel': exclusiveMinimum: got 0, want 0"),
        (-60, "at '/operator/agingSecondsPerLevel': exclusiveMinimum: got -60, want 0"),
        (86401, "at '/operator/agingSecondsPerLevel': maximum: got 86,401, want 86,400"),
        ("60s", "at '/operator/agingSecondsPerLevel': got string, want number"),
    ],
    ids=["zero", "negative", "over-a-day", "a-duration-string"],
)
def test_a_bad_rate_is_refused_by_the_schema(rate: Any, message: str) -> None:
    assert message in render_error(**{"operator.agingSecondsPerLevel": rate})
