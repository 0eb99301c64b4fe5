"""Fakes for the leader-election tests: a virtual-time event loop and an in-memory Lease.

``run_virtual`` runs a coroutine on an event loop whose clock jumps straight to the next
timer whenever nothing is ready (as ``looptime`` does), so a test of a 15 s lease takes
milliseconds and every time it reads is exact.  The elector reads time only from the
loop, so this is its monotonic clock.

``FakeLeaseBackend`` holds one Lease the way the API server does (a resourceVersion
bumped on every write, writes conditional on it); each replica talks to it through its
own ``FakeLeaseClient``, which can be made to fail, or to hang before or after its
write lands.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, TypeVar

from shiftboss.kube.leases import LeaseConflict, LeaseRecord, LeaseSpec, LeaseUnavailable

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if not events:
            if timeout is None:
                raise RuntimeError("nothing is scheduled and nothing can happen: a deadlock")
            self._loop.now += timeout
        return events


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run_virtual(coro: Coroutine[Any, Any, T]) -> T:
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def now() -> float:
    return asyncio.get_running_loop().time()


async def forever() -> None:
    await asyncio.get_running_loop().create_future()


@dataclass(frozen=True)
class Write:
    at: float
    writer: str
    record: LeaseRecord


class FakeLeaseBackend:
    """One Lease, as the API server keeps it."""

    def __init__(self) -> None:
        self.record: LeaseRecord | None = None
        self.writes: list[Write] = []
        self.conflicts = 0
        self._version = 0

    def client(self, name: str) -> FakeLeaseClient:
        return FakeLeaseClient(self, name)

    def put(self, spec: LeaseSpec, writer: str = "someone else") -> LeaseRecord:
        """Write unconditionally, as another party (or the test) would."""
        self._version += 1
        self.record = LeaseRecord(spec, str(self._version))
        self.writes.append(Write(now(), writer, self.record))
        return self.record

    def write_times(self, writer: str) -> list[float]:
        return [w.at for w in self.writes if w.writer == writer]


class Fault(Enum):
    NONE = "none"
    #: Requests never reach the store and never answer.
    HANG = "hang"
    #: Writes land, but their answers never arrive (reads hang too).
    HANG_AFTER_WRITE = "hang after write"
    #: Every request fails at once (the API server answers 5xx, or refuses).
    ERROR = "error"


class FakeLeaseClient:
    """One replica's view of the backend; implements ``shiftboss.kube.leases.LeaseStore``."""

    def __init__(self, backend: FakeLeaseBackend, name: str) -> None:
        self.backend, self.name = backend, name
        self.fault = Fault.NONE
        #: Send times of the writes that were answered with success.
        self.answered_writes: list[float] = []

    async def _enter(self) -> None:
        await asyncio.sleep(0)  # every request yields, so that replicas interleave
        if self.fault is Fault.ERROR:
            raise LeaseUnavailable("503 ServiceUnavailable: injected")
        if self.fault is Fault.HANG:
            await forever()

    async def get(self) -> LeaseRecord | None:
        await self._enter()
        if self.fault is Fault.HANG_AFTER_WRITE:
            await forever()
        return self.backend.record

    async def create(self, spec: LeaseSpec) -> LeaseRecord:
        sent = now()
        await self._enter()
        if self.backend.record is not None:
            self.backend.conflicts += 1
            raise LeaseConflict("409 AlreadyExists")
        return await self._answer(sent, self.backend.put(spec, self.name))

    async def update(self, spec: LeaseSpec, resource_version: str) -> LeaseRecord:
        sent = now()
        await self._enter()
        current = self.backend.record
        if current is None or current.resource_version != resource_version:
            self.backend.conflicts += 1
            raise LeaseConflict("409 Conflict: the object has been modified")
        return await self._answer(sent, self.backend.put(spec, self.name))

    async def _answer(self, sent: float, record: LeaseRecord) -> LeaseRecord:
        if self.fault is Fault.HANG_AFTER_WRITE:
            await forever()
        self.answered_writes.append(sent)
        return replace(record)
