"""How many requests the operator has in flight to the API server, and who goes next.

``PriorityGate`` is an asyncio semaphore whose waiters form a heap keyed by
(priority, arrival): when a slot frees, the most important, then the oldest, waiter
gets it. ``KubeClient`` puts one in front of every non-watch request with a limit equal
to its connection pool's size, so the HTTP library's pool never has a request waiting
for a connection (httpcore's bookkeeping of waiting requests is quadratic in their
number, and its order is arrival only). The queue lives here instead, in the
operator's order: claims and outcomes before routine reads, routine reads before
bookkeeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import IntEnum


class Priority(IntEnum):
    """Lower values go first."""

    #: Claims and worker outcomes: a worker or a job is waiting on the answer.
    CRITICAL = 0
    #: Everything not classified otherwise.
    NORMAL = 1
    #: Bookkeeping nobody waits on: pool status, Events, TTL deletions.
    BACKGROUND = 2


class PriorityGate:
    """At most ``limit`` holders at once; waiters served by (priority, arrival)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self._holders = 0
        self._waiting = 0
        self._arrivals = itertools.count()
        # A waiter that was cancelled stays in the heap, done, until a release pops it.
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []

    @property
    def in_flight(self) -> int:
        return self._holders

    @property
    def waiting(self) -> int:
        return self._waiting

    @asynccontextmanager
    async def slot(self, priority: Priority = Priority.NORMAL) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, priority: Priority = Priority.NORMAL) -> None:
        if self._holders < self.limit and not self._waiting:
            self._holders += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (int(priority), next(self._arrivals), turn))
        self._waiting += 1
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                # The slot was handed over just as we were cancelled: pass it on.
                self.release()
            else:
                self._waiting -= 1
            raise

    def release(self) -> None:
        """Hand the slot to the next live waiter, or free it."""
        while self._heap:
            _, _, turn = heapq.heappop(self._heap)
            if not turn.done():
                self._waiting -= 1
                turn.set_result(None)  # the slot changes hands: holders stay the same
                return
        self._holders -= 1
