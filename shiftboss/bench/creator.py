"""Creating the bench's Jobs fast: a fixed number of requests in flight (the creator
competes with the operator for the API server and the CPU, so it is bounded), each
create timestamped just before it is sent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shiftboss.kube import KubeClient
from shiftboss.kube.client import Resource

SB_JOBS = Resource("shiftboss.io", "v1alpha1", "jobs")
BATCH_JOBS = Resource("batch", "v1", "jobs")

Manifest = Callable[[str, int], dict[str, Any]]


def noop_job(pool: str, *, ttl_seconds: int | None = None) -> Manifest:
    """A Shiftboss Job of the demo worker's ``add`` skill: the cheapest real job."""

    def manifest(name: str, i: int) -> dict[str, Any]:
        spec: dict[str, Any] = {"pool": pool, "skill": "add", "params": {"a": i, "b": 1}}
        if ttl_seconds is not None:
            spec["ttlSecondsAfterFinished"] = ttl_seconds
        return {
            "apiVersion": "shiftboss.io/v1alpha1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": spec,
        }

    return manifest


@dataclass
class Created:
    """When each Job was sent (monotonic s), and the creates the API server refused."""

    at: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def succeeded(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if n not in self.errors]


async def create_one(
    client: KubeClient, path: str, name: str, body: dict[str, Any], created: Created
) -> None:
    created.at[name] = time.monotonic()
    try:
        await client.create(path, body)
    except Exception as exc:  # reported per job: a bench run shows its errors
        created.errors[name] = f"{type(exc).__name__}: {exc}"


async def create_all(
    client: KubeClient,
    path: str,
    names: Sequence[str],
    manifest: Manifest,
    created: Created,
    concurrency: int,
) -> None:
    """Create every one of ``names`` with ``concurrency`` requests in flight."""
    pending = iter(enumerate(names))

    async def lane() -> None:
        for i, name in pending:
            await create_one(client, path, name, manifest(name, i), created)

    await asyncio.gather(*(lane() for _ in range(min(concurrency, len(names)))))
