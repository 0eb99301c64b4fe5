"""The queue of one pool's waiting jobs: highest priority first, then oldest first.

Age is the creation time, which Kubernetes keeps to the second; among jobs created in
the same second, the order in which the operator first saw them decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime


class JobQueue:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, datetime, int, str]] = {}

    def push(self, uid: str, priority: int, created: datetime, arrival: int = 0) -> None:
        self._entries[uid] = (-priority, created, arrival, uid)

    def discard(self, uid: str) -> None:
        self._entries.pop(uid, None)

    def __contains__(self, uid: str) -> bool:
        return uid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def ordered(self) -> Iterator[str]:
        """Uids in dispatch order; a snapshot, so the queue may change while iterating."""
        for *_, uid in sorted(self._entries.values()):
            yield uid
