"""The ceiling: how fast the API server takes creates of Jobs and conditional status
merge-patches of them from one client, with no operator watching the namespace, and
the job rate that bounds for a design writing ``W`` times per job.

A job that costs one create and ``W - 1`` status patches takes ``1/create_rate +
(W-1)/patch_rate`` seconds of the API server's write capacity, hence the bound.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shiftboss.bench.stats import rate
from shiftboss.kube import KubeClient
from shiftboss.kube.client import Resource

JOBS = Resource("shiftboss.io", "v1alpha1", "jobs")
#: A pool nobody serves: the namespace is outside the operator's, and so is the pool.
UNSERVED_POOL = "nobody"


def bound(create_rate: float, patch_rate: float, writes_per_job: int) -> float:
    """Jobs per second the API server allows when each job costs one create and
    ``writes_per_job - 1`` status patches."""
    if writes_per_job < 1:
        raise ValueError(f"writes_per_job must be at least 1 (the create), got {writes_per_job}")
    if create_rate <= 0 or patch_rate <= 0:
        raise ValueError(f"rates must be positive, got create {create_rate}, patch {patch_rate}")
    return 1 / (1 / create_rate + (writes_per_job - 1) / patch_rate)


@dataclass(frozen=True)
class Level:
    concurrency: int
    creates_per_second: float
    patches_per_second: float
    errors: int


@dataclass(frozen=True)
class Ceiling:
    namespace: str
    ops_per_level: int
    levels: list[Level]
    create_rate: float
    patch_rate: float
    bounds: dict[int, float] = field(default_factory=dict)

    def bound_for(self, writes_per_job: int) -> float:
        return self.bounds[writes_per_job]


def _job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"pool": UNSERVED_POOL, "skill": "add", "params": {"a": 1, "b": 1}},
    }


def _running_status(resource_version: str) -> dict[str, Any]:
    """What a claim writes: the precondition, phase, attempt, worker and start time."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"resourceVersion": resource_version},
        "status": {
            "phase": "Running",
            "attempt": 1,
            "worker": "ceiling",
            "startTime": now,
            "attemptStartTime": now,
        },
    }


async def _timed(
    concurrency: int, items: Sequence[str], act: Callable[[str], Awaitable[None]]
) -> tuple[float, int]:
    """Run ``act`` over ``items`` with ``concurrency`` in flight; (seconds, errors)."""
    pending = iter(items)
    errors = 0

    async def lane() -> None:
        nonlocal errors
        for item in pending:
            try:
                await act(item)
            except Exception:  # counted: a ceiling with errors is reported as such
                errors += 1

    started = time.monotonic()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.monotonic() - started, errors


async def _level(client: KubeClient, namespace: str, concurrency: int, ops: int) -> Level:
    """``ops`` creates, then one conditional status patch of each Job created."""
    path = JOBS.path(namespace)
    versions: dict[str, str] = {}

    async def create(name: str) -> None:
        created = await client.create(path, _job(name))
        versions[name] = created["metadata"]["resourceVersion"]

    async def patch(name: str) -> None:
        status = JOBS.path(namespace, name, "status")
        await client.patch(status, _running_status(versions[name]))

    names = [f"c{concurrency}-{i}" for i in range(ops)]
    create_seconds, create_errors = await _timed(concurrency, names, create)
    patch_seconds, patch_errors = await _timed(concurrency, list(versions), patch)
    return Level(
        concurrency,
        rate(len(versions), create_seconds),
        rate(len(versions) - patch_errors, patch_seconds),
        create_errors + patch_errors,
    )


async def measure(client: KubeClient, namespace: str, ops: int, levels: Sequence[int]) -> Ceiling:
    """Creates then patches ``ops`` Jobs at each concurrency in ``levels``; the best
    rate of each is the ceiling. Deletes every Job it created."""
    measured: list[Level] = []
    try:
        for concurrency in levels:
            measured.append(await _level(client, namespace, concurrency, ops))
    finally:
        await client.delete(JOBS.path(namespace))  # deletecollection: one request for all
    create_rate = max(level.creates_per_second for level in measured)
    patch_rate = max(level.patches_per_second for level in measured)
    bounds = (
        {w: round(bound(create_rate, patch_rate, w), 1) for w in (2, 3)}
        if create_rate > 0 and patch_rate > 0
        else {}  # every request failed: the table shows the errors, not a bound
    )
    return Ceiling(namespace, ops, measured, create_rate, patch_rate, bounds)
