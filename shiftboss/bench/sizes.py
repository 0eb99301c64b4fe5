"""The bench's sizes, read from ``SHIFTBOSS_BENCH_*`` environment variables (the list
is in the package docstring and ``make help``)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

PREFIX = "SHIFTBOSS_BENCH_"


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"{PREFIX}{name}={raw!r}: expected a whole number, e.g. {default}"
        ) from None
    if value < minimum:
        raise ValueError(f"{PREFIX}{name}={value}: must be at least {minimum}")
    return value


def _float(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{PREFIX}{name}={raw!r}: expected a number, e.g. {default}") from None
    if not low <= value <= high:
        raise ValueError(f"{PREFIX}{name}={value}: must lie between {low} and {high}")
    return value


def _ints(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = os.environ.get(PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        values = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        example = ",".join(map(str, default))
        raise ValueError(
            f"{PREFIX}{name}={raw!r}: expected comma-separated whole numbers, e.g. {example}"
        ) from None
    if not values or min(values) < 1:
        raise ValueError(f"{PREFIX}{name}={raw!r}: give at least one number, each at least 1")
    return values


@dataclass(frozen=True)
class Sizes:
    workers: int
    concurrency: int
    idle_jobs: int
    bursts: tuple[int, ...]
    creators: int
    ceiling_ops: int
    ceiling_levels: tuple[int, ...]
    peer_jobs: int
    restart_queued: int
    sustained_seconds: int
    sustained_fraction: float
    profile: bool
    scale_queued: int
    scale_claims: int

    @classmethod
    def from_env(cls) -> Sizes:
        return cls(
            workers=_int("WORKERS", 4, 1),
            concurrency=_int("CONCURRENCY", 8, 1),
            idle_jobs=_int("IDLE", 20, 1),
            bursts=_ints("BURSTS", (1_000, 10_000)),
            creators=_int("CREATORS", 32, 1),
            ceiling_ops=_int("CEILING_OPS", 600, 10),
            ceiling_levels=_ints("CEILING_LEVELS", (8, 32, 64)),
            peer_jobs=_int("PEER", 50, 1),
            restart_queued=_int("RESTART_QUEUED", 20, 1),
            sustained_seconds=_int("SUSTAINED_SECONDS", 300, 0),
            sustained_fraction=_float("SUSTAINED_FRACTION", 0.7, 0.01, 2.0),
            profile=os.environ.get(PREFIX + "PROFILE", "") not in ("", "0", "false"),
            scale_queued=_int("SCALE_QUEUED", 100_000, 1),
            scale_claims=_int("SCALE_CLAIMS", 50, 1),
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
