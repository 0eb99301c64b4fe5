"""The priority gate in front of the API server: order, limit, and no slot lost to an
error or a cancellation."""

from __future__ import annotations

import asyncio
import random

import pytest

from shiftboss.kube.flow import Priority, PriorityGate

#: A gate that loses a slot would leave a waiter hanging: fail fast instead.
pytestmark = pytest.mark.timeout(5)


async def queued(gate: PriorityGate, count: int) -> None:
    """Let the event loop run until ``count`` waiters are queued at ``gate``."""
    for _ in range(100):
        if gate.waiting == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{gate.waiting} waiters queued, expected {count}")


async def test_waiters_are_served_by_priority_then_arrival():
    gate = PriorityGate(1)
    await gate.acquire()
    served: list[str] = []

    async def take(label: str, priority: Priority) -> None:
        async with gate.slot(priority):
            served.append(label)

    arrivals = [
        ("background", Priority.BACKGROUND),
        ("normal-1", Priority.NORMAL),
        ("critical-1", Priority.CRITICAL),
        ("normal-2", Priority.NORMAL),
        ("critical-2", Priority.CRITICAL),
    ]
    tasks = []
    for label, priority in arrivals:
        tasks.append(asyncio.create_task(take(label, priority)))
        await queued(gate, len(tasks))
    gate.release()
    await asyncio.gather(*tasks)
    assert served == ["critical-1", "critical-2", "normal-1", "normal-2", "background"]
    assert (gate.in_flight, gate.waiting) == (0, 0)


async def test_never_more_holders_than_the_limit():
    gate = PriorityGate(5)
    rng = random.Random(7)
    holders = peak = 0

    async def work(priority: Priority, turns: int) -> None:
        nonlocal holders, peak
        async with gate.slot(priority):
            holders += 1
            peak = max(peak, holders)
            assert gate.in_flight <= gate.limit
            for _ in range(turns):
                await asyncio.sleep(0)
            holders -= 1

    await asyncio.gather(*(work(rng.choice(list(Priority)), rng.randint(0, 5)) for _ in range(300)))
    assert peak == 5
    assert (gate.in_flight, gate.waiting) == (0, 0)


async def test_a_newcomer_does_not_overtake_queued_waiters():
    gate = PriorityGate(1)
    await gate.acquire()
    waiter = asyncio.create_task(gate.acquire(Priority.BACKGROUND))
    await queued(gate, 1)
    gate.release()  # handed to the waiter, not freed
    newcomer = asyncio.create_task(gate.acquire(Priority.CRITICAL))
    await waiter
    await queued(gate, 1)
    assert not newcomer.done()
    gate.release()
    await newcomer
    gate.release()
    assert gate.in_flight == 0


async def test_an_error_inside_the_slot_releases_it():
    gate = PriorityGate(1)
    with pytest.raises(RuntimeError):
        async with gate.slot():
            raise RuntimeError("request failed")
    assert gate.in_flight == 0
    async with gate.slot():
        assert gate.in_flight == 1


async def test_cancelling_a_waiter_leaks_no_slot():
    gate = PriorityGate(1)
    await gate.acquire()
    cancelled = asyncio.create_task(gate.acquire(Priority.CRITICAL))
    after = asyncio.create_task(gate.acquire(Priority.BACKGROUND))
    await queued(gate, 2)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert gate.waiting == 1
    gate.release()  # skips the cancelled waiter
    await after
    assert (gate.in_flight, gate.waiting) == (1, 0)
    gate.release()
    assert gate.in_flight == 0


async def test_a_waiter_cancelled_just_after_its_turn_came_passes_the_slot_on():
    gate = PriorityGate(1)
    await gate.acquire()
    first = asyncio.create_task(gate.acquire(Priority.CRITICAL))
    second = asyncio.create_task(gate.acquire(Priority.NORMAL))
    await queued(gate, 2)
    gate.release()  # the slot is handed to ``first``, which has not run yet...
    first.cancel()  # ...and is cancelled before it does
    with pytest.raises(asyncio.CancelledError):
        await first
    await second
    assert (gate.in_flight, gate.waiting) == (1, 0)
    gate.release()
    assert gate.in_flight == 0


async def test_cancelling_a_holder_releases_its_slot():
    gate = PriorityGate(1)
    inside = asyncio.Event()

    async def hold() -> None:
        async with gate.slot():
            inside.set()
            await asyncio.Event().wait()

    holder = asyncio.create_task(hold())
    await inside.wait()
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    assert gate.in_flight == 0


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        PriorityGate(0)
