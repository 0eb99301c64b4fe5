"""Keyed timers in a binary heap: arm, re-arm and cancel in O(log n), and take only
what is due, so a tick costs as much as the timers that fire, not as many as exist.

Each key has at most one live time.  Re-arming or cancelling leaves the old heap slot
behind; it is skipped when it reaches the head, and the heap is rebuilt when stale
slots outnumber live ones (so memory stays proportional to the armed timers).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_REBUILD_FACTOR, _REBUILD_FLOOR = 2, 1024


class TimerHeap(Generic[K]):
    def __init__(self) -> None:
        self._due: dict[K, float] = {}
        #: (when, sequence, key); the sequence keeps keys out of comparisons.
        self._slots: list[tuple[float, int, K]] = []
        self._sequence = itertools.count()

    def arm(self, key: K, when: float) -> None:
        """Fire ``key`` at ``when`` (replacing any earlier arming of it)."""
        if self._due.get(key) == when:
            return
        self._due[key] = when
        heapq.heappush(self._slots, (when, next(self._sequence), key))
        self._compact()

    def cancel(self, key: K) -> None:
        if self._due.pop(key, None) is not None:
            self._compact()

    def pop_due(self, now: float) -> list[K]:
        """Disarm and return every key due at ``now``, soonest first."""
        fired: list[K] = []
        slots = self._slots
        while slots and slots[0][0] <= now:
            when, _, key = heapq.heappop(slots)
            if self._due.get(key) == when:
                del self._due[key]
                fired.append(key)
        return fired

    def _compact(self) -> None:
        if len(self._slots) > _REBUILD_FACTOR * len(self._due) + _REBUILD_FLOOR:
            self._slots = [slot for slot in self._slots if self._due.get(slot[2]) == slot[0]]
            heapq.heapify(self._slots)

    def __contains__(self, key: object) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)
