"""Percentiles and latency summaries of the bench (``shiftboss.bench.stats``)."""

from __future__ import annotations

import math

import pytest

from shiftboss.bench.stats import Latency, percentile, rate


def test_percentile_interpolates_between_the_nearest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 0.5) == 2.5
    assert percentile(values, 1.0) == 4.0
    assert percentile(values, 0.99) == pytest.approx(3.97)


def test_percentile_of_a_hundred_values_matches_the_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile(values, 0.99) == pytest.approx(99.01)


def test_percentile_of_nothing_is_nan_and_a_bad_quantile_is_refused() -> None:
    assert math.isnan(percentile([], 0.5))
    with pytest.raises(ValueError, match=r"q must lie in \[0, 1\], got 50"):
        percentile([1.0], 50)


def test_latency_is_in_milliseconds_and_renders_missing_values_as_dashes() -> None:
    latency = Latency.of([0.010, 0.020, 0.030])
    assert (latency.count, latency.p50_ms, latency.p99_ms) == (3, 20.0, 29.8)
    assert latency.brief() == "20 / 29 / 29.8"
    assert Latency.of([]).brief() == "- / - / -"


def test_rate_guards_against_no_elapsed_time() -> None:
    assert rate(150, 2.0) == 75.0
    assert rate(10, 0.0) == 0.0
