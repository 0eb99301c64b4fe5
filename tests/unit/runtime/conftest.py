"""Fixtures of the worker runtime tests (helpers live in ``wr_fakes``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from wr_fakes import FakeOperator, Harness

from worker_runtime import Worker

HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def operator() -> AsyncIterator[FakeOperator]:
    fake = await FakeOperator().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def harness_factory(operator: FakeOperator) -> AsyncIterator[HarnessFactory]:
    harnesses: list[Harness] = []

    async def make(worker: Worker, **options: Any) -> Harness:
        wait_registered = options.pop("wait_registered", True)
        harness = Harness(worker, operator, **options)
        harnesses.append(harness)
        return await harness.start(wait_registered)

    yield make
    for harness in harnesses:
        if harness.task is not None and not harness.task.done():
            harness.task.cancel()
            await asyncio.gather(harness.task, return_exceptions=True)
        await harness.client.aclose()
