"""Metric labels whose values workers choose stay bounded (``shiftboss.metrics``)."""

from __future__ import annotations

from shiftboss.metrics import BoundedLabel, error_type_label


def test_values_are_kept_until_the_bound_then_counted_as_other():
    label = BoundedLabel(max_values=3)

    assert [label(v) for v in ("A", "B", "C", "D", "E")] == ["A", "B", "C", "other", "other"]
    assert label("B") == "B"  # a value seen before keeps its series


def test_values_are_sanitised_and_cut_short():
    label = BoundedLabel(max_length=10)

    assert label('Bad"Err{or}\n') == "Bad_Err_or"
    assert label("ValueError.sub:type-1") == "ValueError"
    assert label("") == "unknown"


def test_a_flood_of_distinct_error_types_keeps_at_most_100_series():
    label = BoundedLabel()

    values = {label(f"Error{i}") for i in range(10_000)}

    assert len(values) == 101  # 100 kept, and "other"
    assert isinstance(error_type_label, BoundedLabel)
    assert error_type_label.max_values == 100
