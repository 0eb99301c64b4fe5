"""Percentiles and latency summaries: pure functions over lists of seconds."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, interpolated between the two nearest ranks
    (numpy's default), so p50 of an even count is the mean of the middle two."""
    if not 0 <= q <= 1:
        raise ValueError(f"percentile q must lie in [0, 1], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Latency:
    """p50/p95/p99 of a set of durations, in milliseconds (NaN when there were none)."""

    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        def ms(q: float) -> float:
            return round(percentile(seconds, q) * 1000, 1)

        return cls(len(seconds), ms(0.50), ms(0.95), ms(0.99))

    def brief(self) -> str:
        """``p50 / p95 / p99`` for a table cell."""
        return f"{_num(self.p50_ms)} / {_num(self.p95_ms)} / {_num(self.p99_ms)}"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:g}"


def rate(count: int, seconds: float) -> float:
    """``count`` per second over ``seconds`` (0 when no time passed), one decimal."""
    return round(count / seconds, 1) if seconds > 0 else 0.0
