"""Helpers of the dispatcher's unit tests: workers, submissions, the timers, leases.

The fake store (``fake_store.FakeJobStore``) enforces the resourceVersion precondition,
bumps the version on every write and yields to the event loop on every call, so claims,
reports and timers really interleave.  Time is driven by hand: the wall clock is a
``FakeClock``, the clock of leases and timers a ``FakeMonotonic``; the timers run when a
test calls ``tick()`` (then ``settle()`` waits for what it spawned).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from fake_store import NAMESPACE, POOL, FakeJobStore, at

from shiftboss.api.common import format_timestamp
from shiftboss.jobs.dispatcher import Dispatcher
from shiftboss.workers.registry import RegisteredSkill, WorkerInfo
from worker_runtime.protocol import Assignment, SkillSpec


class FakeMonotonic:
    """The dispatcher's lease and timer clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def worker(
    worker_id: str = "w1",
    *skills: str,
    schemas: dict[str, dict] | None = None,
    pool: str = POOL,
    namespace: str = NAMESPACE,
) -> WorkerInfo:
    """A registered worker offering ``skills`` (default: echo)."""
    schemas = schemas or {}
    return WorkerInfo(
        namespace=namespace,
        pool=pool,
        worker_id=worker_id,
        skills={
            name: RegisteredSkill.of(SkillSpec(name=name, input_schema=schemas.get(name, {})))
            for name in (skills or ("echo",))
        },
        capacity=8,
    )


def submit(store: FakeJobStore, dispatcher: Dispatcher, name: str, **kwargs: Any) -> dict:
    """Create a Job and let the dispatcher see it (as the watch would)."""
    obj = store.create(name, **kwargs)
    dispatcher.observe(obj)
    return obj


async def settle(dispatcher: Dispatcher) -> list[BaseException]:
    """Wait for every background task the dispatcher spawned; returns their exceptions."""
    errors: list[BaseException] = []
    for _ in range(50):
        await asyncio.sleep(0)
        tasks = list(dispatcher.background)
        if not tasks:
            break
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors += [r for r in results if isinstance(r, BaseException)]
    return errors


async def tick(dispatcher: Dispatcher) -> None:
    """One round of the timers, and everything it started."""
    dispatcher.tick()
    assert await settle(dispatcher) == []


async def ticking(dispatcher: Dispatcher) -> None:
    """One round of the timers as a coroutine, to race something else."""
    dispatcher.tick()


async def claim_one(dispatcher: Dispatcher, info: WorkerInfo) -> Assignment:
    got = await dispatcher.claim(info, 1, 0)
    assert len(got) == 1, got
    return got[0]


def expire(dispatcher: Dispatcher, key: str) -> None:
    """Make the lease of attempt ``key`` run out (and its timer due, as time would)."""
    lease = dispatcher.leases[key]
    lease.expires = dispatcher.book.monotonic() - 1
    dispatcher.book.arm_lease(lease)


def end_grace(dispatcher: Dispatcher, key: str) -> None:
    """Make the grace of a stopping attempt ``key`` run out: it is fenced at the next tick."""
    stop = dispatcher.leases[key].stop
    assert stop is not None, "the attempt was not told to stop"
    stop.fence_at = dispatcher.book.monotonic() - 1
    dispatcher.book.arm_lease(dispatcher.leases[key])


def ts(value: datetime) -> str:
    return format_timestamp(value)


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def commands(dispatcher: Dispatcher, info: WorkerInfo, *keys: str) -> list[tuple[str, str]]:
    return [
        (str(c.type), c.attempt_id or "") for c in dispatcher.heartbeat(info, list(keys), False)
    ]


def running_status(attempt: int, worker_id: str, started: datetime) -> dict:
    """A Running status as a (previous) operator wrote it."""
    return {
        "phase": "Running",
        "attempt": attempt,
        "countedAttempts": attempt - 1,
        "worker": worker_id,
        "startTime": ts(at(0)),
        "attemptStartTime": ts(started),
        "attempts": [
            {
                "attempt": n,
                "worker": "w-old",
                "startTime": ts(at(0)),
                "endTime": ts(at(1)),
                "outcome": "Failed",
                "errorType": "ValueError",
                "message": "boom",
            }
            for n in range(1, attempt)
        ],
        "message": f"attempt {attempt} running on {worker_id}",
    }
