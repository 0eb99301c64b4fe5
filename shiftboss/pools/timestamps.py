"""Kubernetes timestamps as POSIX times (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["timestamp"]


def timestamp(value: Any) -> float:
    """An RFC 3339 string (as the API server writes them), datetime or number as a POSIX
    timestamp; 0.0 for a missing value."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        # Kubernetes always writes UTC; a naive value is taken as UTC too.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
