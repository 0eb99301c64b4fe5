"""Claiming: long-poll the operator for as many attempts as there are free slots.

The rules (docs/worker-protocol.md, "Claiming"):

* A claim asks for the really free slots only (``AttemptTable.free_slots``: a slot is
  free once its skill has returned, a sync skill's thread included).
* Every claim carries a ``request_id``: a fresh random one for each new claim, the same
  one when the previous try got no answer (transport error, timeout, 5xx, 429), so the
  operator replays the assignments it already wrote instead of stranding them.
* Draining stops claiming at once (an outstanding long poll is given up; what the
  operator wrote for it comes back as ``assign`` and is released).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from .backoff import Backoff
from .client import OperatorClient
from .config import WorkerConfig
from .delivery import Reregister
from .errors import ConfigError, OperatorUnavailable, ProtocolError
from .lease import LeaseClock
from .protocol import Assignment, ClaimRequest, ClaimResponse
from .slots import AttemptTable
from .timings import Timings

log = logging.getLogger(__name__)

#: Takes up one assignment; given the lease-clock reading at which the claim was sent.
Start = Callable[[Assignment, float], None]


def new_request_id() -> str:
    return secrets.token_hex(12)


class Claims:
    def __init__(
        self,
        *,
        client: OperatorClient,
        config: WorkerConfig,
        timings: Timings,
        table: AttemptTable,
        clock: LeaseClock,
        start: Start,
        reregister: Reregister,
        drain_requested: asyncio.Event,
    ) -> None:
        self._client = client
        self._config = config
        self._timings = timings
        self._table = table
        self._clock = clock
        self._start = start
        self._reregister = reregister
        self._drain_requested = drain_requested
        self._backoff = Backoff(timings.retry_initial_seconds, timings.retry_max_seconds)
        self._failures = 0  # in a row

    async def run(self) -> None:
        """Claim until draining starts."""
        unanswered: ClaimRequest | None = None  # a claim to repeat, with its request_id
        while not self._drain_requested.is_set():
            request = unanswered or await self._next_request()
            if request is None:
                continue
            sent_at, sent = self._clock.now(), time.monotonic()
            try:
                response = await self._send(request)
            except _Drained:
                return
            except OperatorUnavailable as exc:
                unanswered = request
                await self._pause(f"claim not answered: {exc}", exc.retry_after)
            except ProtocolError as exc:
                unanswered = None
                if exc.status == 404 and await self._reregister(sent):
                    continue
                await self._pause(f"the operator refused a claim: {exc}", None, logging.ERROR)
            except ConfigError as exc:  # not sent (the token file): the same id is right
                unanswered = request
                await self._pause(f"claim not sent: {exc}", None)
            except Exception:  # a bug must not end claiming; the same id is safe to repeat
                log.exception("claim failed unexpectedly")
                unanswered = request
                await self._pause("claim failed unexpectedly", None)
            else:
                unanswered = None
                self._backoff.reset()
                if self._failures:
                    log.info("claims answered again after %d failure(s)", self._failures)
                    self._failures = 0
                for assignment in response.assignments:
                    self._start(assignment, sent_at)
                elapsed = time.monotonic() - sent
                if not response.assignments:
                    await self._wait_drain(self._timings.min_claim_interval_seconds - elapsed)

    async def _next_request(self) -> ClaimRequest | None:
        """A new claim for the free slots, or None after waiting for one to free up."""
        free = self._table.free_slots
        if free <= 0:
            self._table.slot_freed.clear()
            await _first(self._table.slot_freed.wait(), self._drain_requested.wait())
            return None
        return ClaimRequest(
            max_attempts=free,
            wait_seconds=self._config.claim_wait_seconds,
            request_id=new_request_id(),
        )

    async def _send(self, request: ClaimRequest) -> ClaimResponse:
        claim = asyncio.ensure_future(self._client.claim(self._config.worker_id, request))
        drained = asyncio.ensure_future(self._drain_requested.wait())
        try:
            await asyncio.wait([claim, drained], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            claim.cancel()
            raise
        finally:
            drained.cancel()
        if not claim.done():  # draining: give up the long poll
            claim.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await claim
            raise _Drained
        return claim.result()

    async def _pause(
        self, problem: str, retry_after: float | None, level: int = logging.WARNING
    ) -> None:
        delay = self._backoff.next(at_least=retry_after)
        log.log(level, "%s; claiming again in %.1fs", problem, delay)
        await self._wait_drain(delay)

    async def _wait_drain(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain_requested.wait(), seconds)


class _Drained(Exception):
    """Draining began while a claim was outstanding."""


async def _first(*coroutines: Coroutine[Any, Any, object]) -> None:
    """Wait until the first of ``coroutines`` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
