"""The queue of one pool's waiting jobs: by priority, then age, with aging.

A job is served in the order of its *virtual time*: its creation time minus
``priority * aging_seconds_per_level``, as if a job of priority p had been created p
levels earlier.  Among jobs created within one level's seconds of each other the higher
priority goes first; a job that has waited ``(p_high - p_low) * aging_seconds_per_level``
longer than a higher-priority one goes before it, so a steady stream of high-priority
jobs never starves a low one (docs/scheduling.md gives the bound).  Unlike "priority
plus time waited", the virtual time of a queued job never changes, so the heaps stay
valid as time passes.  Ties go to the higher priority, then to the order in which the
operator first saw the jobs (creation times are kept to the second).

One binary heap per skill, so that a claim looks only at the jobs its worker can run:
``best(skills)`` compares the heads of the worker's skills' heaps (O(skills)), pushing
and removing are O(log n).  Removal is lazy: an entry leaves ``_entries`` at once and
its heap slot is dropped when it reaches the head, or when a heap that has become
mostly stale slots is rebuilt (so memory stays proportional to the jobs queued).
A third heap, by creation time alone, answers ``oldest_created()`` for the queue-age
metric in amortised O(1), pruned and rebuilt the same way.

``ahead(uid)`` counts the jobs served before one (a read for ``kubectl shiftboss get``,
O(jobs queued), never on the dispatch path).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from shiftboss.jobs.settings import DispatchSettings

#: (virtual time as POSIX seconds, -priority, arrival, uid): smaller is served first.
Rank = tuple[float, int, int, str]

#: A heap is rebuilt when its stale slots outnumber live ones by this factor (plus a floor).
_REBUILD_FACTOR, _REBUILD_FLOOR = 2, 1024


#: (rank, skill, creation time as a POSIX timestamp).  A plain tuple, not a NamedTuple:
#: the garbage collector stops tracking tuples of immutable values, not their subclasses,
#: and with 100,000 jobs queued that saves a third of the cost of a push.
_Entry = tuple[Rank, str, float]


@dataclass(frozen=True)
class Ahead:
    """The jobs of the pool's queue ranked before one job, by why they are."""

    #: Higher priority (within aging of it, or waiting longer).
    higher_priority: int = 0
    #: The same priority, waiting longer (or seen first, created in the same second).
    same_priority: int = 0
    #: Lower priority, that waited long enough to age past it.
    lower_priority: int = 0

    @property
    def total(self) -> int:
        return self.higher_priority + self.same_priority + self.lower_priority

    @property
    def position(self) -> int:
        """1: the next job ``best`` returns for a worker offering every skill queued."""
        return self.total + 1


@dataclass
class _SkillHeap:
    slots: list[Rank] = field(default_factory=list)
    live: int = 0


class JobQueue:
    def __init__(
        self, aging_seconds_per_level: float = DispatchSettings.aging_seconds_per_level
    ) -> None:
        if not aging_seconds_per_level > 0:
            raise ValueError("aging_seconds_per_level must be positive")
        self.aging_seconds_per_level = aging_seconds_per_level
        self._entries: dict[str, _Entry] = {}
        self._heaps: dict[str, _SkillHeap] = {}
        self._ages: list[tuple[float, str]] = []  # (creation time, uid)

    def push(self, uid: str, skill: str, priority: int, created: datetime, arrival: int) -> None:
        """Queue ``uid`` (again: an entry already queued with the same rank is kept)."""
        created_at = created.timestamp()
        virtual = created_at - priority * self.aging_seconds_per_level
        entry: _Entry = ((virtual, -priority, arrival, uid), skill, created_at)
        current = self._entries.get(uid)
        if current == entry:
            return
        if current is not None:
            self.discard(uid)
        self._entries[uid] = entry
        heap = self._heaps.setdefault(skill, _SkillHeap())
        heapq.heappush(heap.slots, entry[0])
        heap.live += 1
        heapq.heappush(self._ages, (created_at, uid))

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
            self._ages = [(entry[2], uid) for uid, entry in self._entries.items()]
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

    def ahead(self, uid: str) -> Ahead | None:
        """The queued jobs ranked before ``uid`` in ``best``'s order, whatever their
        skill; None when ``uid`` is not queued.  ``position`` is its place in the pool's
        queue as one worker offering every skill would take it: which job a real worker
        gets also depends on the skills it offers (a job for a skill no idle worker
        offers does not hold the others back).  O(jobs queued)."""
        entry = self._entries.get(uid)
        if entry is None:
            return None
        rank = entry[0]
        priority = -rank[1]
        higher = same = lower = 0
        for other, _, _ in self._entries.values():
            if other < rank:
                if -other[1] > priority:
                    higher += 1
                elif -other[1] == priority:
                    same += 1
                else:
                    lower += 1
        return Ahead(higher, same, lower)

    def position(self, uid: str) -> int | None:
        """``uid``'s place in the queue, 1 = next (see ``ahead``); None if not queued."""
        ahead = self.ahead(uid)
        return ahead.position if ahead is not None else None

    def oldest_created(self) -> float | None:
        """The creation time (POSIX seconds) of the oldest job queued, if any."""
        ages = self._ages
        while ages and not self._is_queued(*ages[0]):
            heapq.heappop(ages)  # a stale slot: that job left the queue (or came back)
        return ages[0][0] if ages else None

    def _is_queued(self, created: float, uid: str) -> bool:
        entry = self._entries.get(uid)
        return entry is not None and entry[2] == created

    def _is_live(self, rank: Rank, skill: str) -> bool:
        entry = self._entries.get(rank[3])
        return entry is not None and entry[0] == rank and entry[1] == skill

    def __contains__(self, uid: str) -> bool:
        return uid in self._entries

    def __len__(self) -> int:
        return len(self._entries)
