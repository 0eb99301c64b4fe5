"""Restore before reconcile: pools observed before start() get no loop until then."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from shiftboss.kube.client import KubeClient
from shiftboss.kube.events import EventRecorder
from shiftboss.pools.controller import PoolController


def pool(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name, "namespace": "media", "uid": f"u-{name}", "generation": 1},
        "spec": {"image": "img:1", "app": "app:worker", "replicas": 1},
    }


def idle_controller() -> PoolController:
    """A controller whose loops are stopped before they run: the client is never used."""
    client = cast(KubeClient, object())
    return PoolController(
        client,
        EventRecorder(client),
        operator_url="http://operator",
        queued=lambda ns, name: 0,
        running=lambda ns, name: 0,
        busy_workers=lambda ns: set(),
    )


def pool_loops() -> int:
    return sum(
        1
        for task in asyncio.all_tasks()
        if task.get_coro().__qualname__ == "PoolController._loop"  # type: ignore[union-attr]
    )


async def test_observe_takes_pools_in_and_start_starts_their_loops() -> None:
    controller = idle_controller()
    try:
        controller.observe(pool("a"))
        controller.observe(pool("b"))
        controller.trigger("media", "a")  # e.g. a job of the pool restored
        assert set(controller.pools) == {("media", "a"), ("media", "b")}
        assert pool_loops() == 0  # taken in, not reconciled
        controller.start()
        assert pool_loops() == 2
        controller.observe(pool("c"))  # after start, as before: its loop starts at once
        controller.observe(pool("a"))  # ...and a known pool keeps its one loop
        assert pool_loops() == 3
    finally:
        await controller.stop()
    assert pool_loops() == 0


async def test_no_loop_starts_after_stop() -> None:
    # The worker API and Kopf's handlers may trigger a pool while the operator stops; a
    # loop started then would outlive the client (a reconcile failing every second).
    controller = idle_controller()
    controller.observe(pool("a"))
    controller.start()
    await controller.stop()
    controller.trigger("media", "a")
    controller.observe(pool("b"))
    assert pool_loops() == 0
