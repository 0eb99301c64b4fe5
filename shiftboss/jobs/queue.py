"""The queue of one pool's waiting jobs: highest priority first, then oldest first.

Age is the creation time, which Kubernetes keeps to the second; among jobs created in
the same second, the order in which the operator first saw them decides.

One binary heap per skill, so that a claim looks only at the jobs its worker can run:
``best(skills)`` compares the heads of the worker's skills' heaps (O(skills)), pushing
and removing are O(log n).  Removal is lazy: an entry leaves ``_entries`` at once and
its heap slot is dropped when it reaches the head, or when a heap that has become
mostly stale slots is rebuilt (so memory stays proportional to the jobs queued).
A third heap, by creation time alone, answers ``oldest_created()`` for the queue-age
metric in amortised O(1), pruned and rebuilt the same way.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

#: (-priority, creation time as a POSIX timestamp, arrival, uid): smaller is served first.
Rank = tuple[int, float, int, str]

#: A heap is rebuilt when its stale slots outnumber live ones by this factor (plus a floor).
_REBUILD_FACTOR, _REBUILD_FLOOR = 2, 1024


@dataclass
class _SkillHeap:
    slots: list[Rank] = field(default_factory=list)
    live: int = 0


class JobQueue:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[Rank, str]] = {}  # uid -> (rank, skill)
        self._heaps: dict[str, _SkillHeap] = {}
        self._ages: list[tuple[float, str]] = []  # (creation time, uid)

    def push(self, uid: str, skill: str, priority: int, created: datetime, arrival: int) -> None:
        """Queue ``uid`` (again: an entry already queued with the same rank is kept)."""
        rank: Rank = (-priority, created.timestamp(), arrival, uid)
        current = self._entries.get(uid)
        if current == (rank, skill):
            return
        if current is not None:
            self.discard(uid)
        self._entries[uid] = (rank, skill)
        heap = self._heaps.setdefault(skill, _SkillHeap())
        heapq.heappush(heap.slots, rank)
        heap.live += 1
        heapq.heappush(self._ages, (rank[1], uid))

    def discard(self, uid: str) -> None:
        entry = self._entries.pop(uid, None)
        if entry is None:
            return
        skill = entry[1]
        heap = self._heaps[skill]
        heap.live -= 1
        if heap.live == 0:
            del self._heaps[skill]
        elif len(heap.slots) > _REBUILD_FACTOR * heap.live + _REBUILD_FLOOR:
            heap.slots = [rank for rank in heap.slots if self._is_live(rank, skill)]
            heapq.heapify(heap.slots)
        if len(self._ages) > _REBUILD_FACTOR * len(self._entries) + _REBUILD_FLOOR:
            self._ages = [(rank[1], uid) for uid, (rank, _) in self._entries.items()]
            heapq.heapify(self._ages)

    def best(self, skills: Iterable[str]) -> str | None:
        """The uid to dispatch next to a worker offering ``skills`` (it stays queued)."""
        chosen: Rank | None = None
        for skill in skills:
            heap = self._heaps.get(skill)
            if heap is None:
                continue
            slots = heap.slots
            while not self._is_live(slots[0], skill):
                heapq.heappop(slots)  # a stale slot: that job left the queue or moved
            if chosen is None or slots[0] < chosen:
                chosen = slots[0]
        return chosen[3] if chosen is not None else None

    def oldest_created(self) -> float | None:
        """The creation time (POSIX seconds) of the oldest job queued, if any."""
        ages = self._ages
        while ages and not self._is_queued(*ages[0]):
            heapq.heappop(ages)  # a stale slot: that job left the queue (or came back)
        return ages[0][0] if ages else None

    def _is_queued(self, created: float, uid: str) -> bool:
        entry = self._entries.get(uid)
        return entry is not None and entry[0][1] == created

    def _is_live(self, rank: Rank, skill: str) -> bool:
        return self._entries.get(rank[3]) == (rank, skill)

    def __contains__(self, uid: str) -> bool:
        return uid in self._entries

    def __len__(self) -> int:
        return len(self._entries)
