"""Exponential backoff with jitter, shared by every loop that retries the operator."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, with "equal jitter".

    Each delay lies between half and all of the current step: never zero (no
    hammering an operator that is coming back), never in lockstep with other workers.
    """

    def __init__(self, initial: float, maximum: float) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial}, {maximum}")
        self.initial = initial
        self.maximum = maximum
        self._step = initial

    def next(self, at_least: float | None = None) -> float:
        """The next delay (at least ``at_least``, e.g. a ``Retry-After``), then double."""
        step = self._step
        self._step = min(self._step * 2, self.maximum)
        delay = step / 2 + random.uniform(0, step / 2)
        return max(delay, at_least or 0.0)

    def reset(self) -> None:
        self._step = self.initial
