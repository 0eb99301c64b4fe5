"""A watch that timestamps, per object, when each phase was first seen.

Times are the bench's clock when the watch event arrived, so latencies include the API
server's fan-out to watchers (and the bench's own delay in reading it, on a busy
machine). The watch is resumed from the last resourceVersion when the server ends it,
and re-listed after a ``410 Gone``, so a long workload loses no event.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shiftboss.kube import KubeClient
from shiftboss.kube.client import ApiError

PhaseOf = Callable[[dict[str, Any]], str | None]
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})


def shiftboss_phase(obj: dict[str, Any]) -> str | None:
    phase = (obj.get("status") or {}).get("phase")
    return str(phase) if phase else None


def batch_phase(obj: dict[str, Any]) -> str | None:
    """A batch/v1 Job's phase in Shiftboss' words: Running, Succeeded or Failed."""
    status = obj.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True" and condition.get("type") in ("Complete", "Failed"):
            return "Succeeded" if condition["type"] == "Complete" else "Failed"
    return "Running" if status.get("active") else None


@dataclass
class _Waiter:
    remaining: set[str]
    phases: frozenset[str]
    #: How many of ``remaining`` must still arrive: all of them, or just one.
    needed: int
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Recorder:
    """``seen[name][phase]``: when ``phase`` was first seen for ``name`` (monotonic s)."""

    def __init__(self, client: KubeClient, path: str, phase_of: PhaseOf) -> None:
        self.client, self.path, self.phase_of = client, path, phase_of
        self.seen: dict[str, dict[str, float]] = {}
        self.deleted: set[str] = set()
        self._waiters: list[_Waiter] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        version = await self._list()
        self._task = asyncio.create_task(self._run(version))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def first(self, names: Iterable[str], phases: Iterable[str]) -> float | None:
        """The earliest time any of ``names`` reached any of ``phases``."""
        wanted = set(phases)
        times = [t for n in names for p, t in self.seen.get(n, {}).items() if p in wanted]
        return min(times) if times else None

    def reached(self, names: Iterable[str], phases: Iterable[str]) -> list[str]:
        wanted = set(phases)
        return [n for n in names if wanted & self.seen.get(n, {}).keys()]

    async def wait(
        self, names: Iterable[str], phases: Iterable[str], timeout: float, *, any_one: bool = False
    ) -> None:
        """Until every one of ``names`` (or, ``any_one``, one of them) reached one of
        ``phases``; ``TimeoutError`` saying how many did not."""
        wanted = frozenset(phases)
        names = list(names)
        remaining = {n for n in names if not wanted & self.seen.get(n, {}).keys()}
        arrived = len(names) - len(remaining)
        needed = (0 if arrived else min(1, len(remaining))) if any_one else len(remaining)
        waiter = _Waiter(remaining, wanted, needed)
        if not waiter.needed:
            return
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter.done.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{len(waiter.remaining)} of {len(names)} objects did not reach "
                f"{sorted(wanted)} within {timeout:.0f}s"
            ) from None
        finally:
            self._waiters.remove(waiter)

    def _note(self, obj: dict[str, Any]) -> None:
        phase = self.phase_of(obj)
        if not phase:
            return
        name = obj["metadata"]["name"]
        phases = self.seen.setdefault(name, {})
        if phase in phases:
            return
        phases[phase] = time.monotonic()
        for waiter in self._waiters:
            if phase in waiter.phases and name in waiter.remaining:
                waiter.remaining.discard(name)
                waiter.needed -= 1
                if waiter.needed <= 0:
                    waiter.done.set()

    async def _list(self) -> str:
        listing = await self.client.get(self.path)
        for obj in listing.get("items") or []:
            self._note(obj)
        return str(listing["metadata"]["resourceVersion"])

    async def _run(self, version: str) -> None:
        while True:
            try:
                async for event in self.client.watch(self.path, resource_version=version):
                    obj = event["object"]
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event["type"] == "ERROR":
                        raise ApiError(int(obj.get("code", 500)), obj.get("reason", ""), "")
                    if event["type"] == "DELETED":
                        self.deleted.add(obj["metadata"]["name"])
                    elif event["type"] != "BOOKMARK":
                        self._note(obj)
            except ApiError as exc:
                if exc.status != 410:
                    raise
                version = await self._list()  # too old to resume: start from a fresh list
            except httpx.TransportError:
                await asyncio.sleep(0.5)  # e.g. a dropped connection: resume where it was
