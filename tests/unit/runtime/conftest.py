"""Fixtures of the worker runtime tests (helpers live in ``wr_fakes``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from wr_fakes import FakeOperator, Harness

from worker_runtime import Worker


@pytest.fixture
def operator() -> FakeOperator:
    return FakeOperator()


@pytest.fixture
async def harness_factory(operator: FakeOperator):
    harnesses: list[Harness] = []

    async def make(worker: Worker, **options: Any) -> Harness:
        harness = await Harness(worker, operator, **options).start()
        harnesses.append(harness)
        return harness

    yield make
    for harness in harnesses:
        if harness.task is not None and not harness.task.done():
            harness.task.cancel()
            await asyncio.gather(harness.task, return_exceptions=True)
        await harness.client.aclose()
