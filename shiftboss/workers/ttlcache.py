"""A dictionary whose entries expire, holding at most a fixed number of them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Entries live until their own expiry time; past ``max_entries`` the oldest go."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError(f"TtlCache needs max_entries >= 1 (got {max_entries})")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[V, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: str, value: V, expires: float) -> None:
        self._entries.pop(key, None)
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = (value, expires)

    def drop_where(self, predicate: Callable[[V], bool]) -> int:
        """Drop every entry whose value matches; returns how many went."""
        doomed = [key for key, (value, _) in self._entries.items() if predicate(value)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)
