"""The bound the API server's ceiling implies for W writes per job."""

from __future__ import annotations

import pytest

from shiftboss.bench.ceiling import bound


def test_one_write_per_job_is_the_create_rate() -> None:
    assert bound(300.0, 400.0, 1) == pytest.approx(300.0)


@pytest.mark.parametrize(
    ("create_rate", "patch_rate", "writes", "expected"),
    [
        (300.0, 400.0, 2, 1 / (1 / 300 + 1 / 400)),  # about 171.4
        (300.0, 400.0, 3, 120.0),  # 1 / (1/300 + 2/400)
        (219.0, 267.0, 3, 1 / (1 / 219 + 2 / 267)),  # the low end: about 83
    ],
)
def test_each_extra_write_costs_one_status_patch(
    create_rate: float, patch_rate: float, writes: int, expected: float
) -> None:
    assert bound(create_rate, patch_rate, writes) == pytest.approx(expected)


def test_more_writes_per_job_never_raise_the_bound() -> None:
    rates = [bound(250.0, 350.0, w) for w in range(1, 6)]
    assert rates == sorted(rates, reverse=True)


def test_nonsense_inputs_are_refused_with_the_field() -> None:
    with pytest.raises(ValueError, match="writes_per_job must be at least 1"):
        bound(100.0, 100.0, 0)
    with pytest.raises(ValueError, match=r"rates must be positive, got create 0\.0"):
        bound(0.0, 100.0, 2)
