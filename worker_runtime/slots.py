"""The attempts a worker holds, its slots, and the attempt ids it has already started.

A slot is taken from the moment an attempt is accepted until its skill's code has
really returned (``Attempt.busy``), so claims only ever ask for really free slots.  An
attempt id is started at most once: a replayed claim answer and an ``assign`` may both
carry it (docs/worker-protocol.md, "Claiming").
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator

from .attempt import Attempt

#: How many started attempt ids are remembered (the protocol asks for at least 1,024).
REMEMBERED_IDS = 4096


class RecentIds:
    """A set of the last ``size`` ids added."""

    def __init__(self, size: int = REMEMBERED_IDS) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, value: str) -> None:
        self._ids[value] = None
        self._ids.move_to_end(value)
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def __contains__(self, value: object) -> bool:
        return value in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class AttemptTable:
    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.started = RecentIds()
        #: Set whenever a slot frees up; waiters clear it before they look.
        self.slot_freed = asyncio.Event()
        self._attempts: dict[str, Attempt] = {}

    def __iter__(self) -> Iterator[Attempt]:
        return iter(list(self._attempts.values()))

    def get(self, attempt_id: str) -> Attempt | None:
        return self._attempts.get(attempt_id)

    def add(self, attempt: Attempt) -> None:
        self.started.add(attempt.id)
        self._attempts[attempt.id] = attempt

    @property
    def busy(self) -> int:
        return sum(1 for a in self._attempts.values() if a.busy)

    @property
    def free_slots(self) -> int:
        return self.concurrency - self.busy

    def running(self) -> list[Attempt]:
        """Attempts running or stopping: held, with no outcome yet."""
        return [a for a in self._attempts.values() if a.running]

    def settle(self, attempt: Attempt) -> None:
        """Forget an attempt once it has ended and its skill has returned."""
        if not attempt.busy:
            self.slot_freed.set()
            if attempt.ended:
                self._attempts.pop(attempt.id, None)
