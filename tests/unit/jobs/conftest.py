"""Fixtures of the dispatcher's unit tests: the in-memory fakes and a Dispatcher on them."""

from __future__ import annotations

import random
from typing import Any

import pytest
from dispatching import FakeMonotonic, settle
from fake_store import FakeClock, FakeEvents, FakeJobStore

from shiftboss.jobs.dispatcher import Dispatcher, DispatchSettings


@pytest.fixture
def store() -> FakeJobStore:
    return FakeJobStore()


@pytest.fixture
def events() -> FakeEvents:
    return FakeEvents()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mono() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
async def make_dispatcher(store, events, clock, mono):
    made: list[Dispatcher] = []

    def make(*, settings: dict[str, Any] | None = None, **hooks: Any) -> Dispatcher:
        """A Dispatcher on the fakes; ``hooks`` are is_paused and why_blocked."""
        dispatcher = Dispatcher(
            store,  # type: ignore[arg-type]
            events,  # type: ignore[arg-type]
            DispatchSettings(**(settings or {})),
            clock=clock,
            monotonic=mono,
            rng=random.Random(0),
            **hooks,
        )
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.close()
        await settle(dispatcher)


@pytest.fixture
def dispatcher(make_dispatcher) -> Dispatcher:
    return make_dispatcher()
