"""Heartbeats: renew the leases of every attempt held, obey the answers' commands, and
stop the work whose lease the worker can no longer vouch for.

The rules (docs/worker-protocol.md, "Leases and heartbeats"):

* Every ``heartbeat_interval_seconds`` (sooner when woken), list every attempt held:
  running, stopping, or finished with an outcome not yet settled.  A request gives up
  after one interval (bounded to 1..10 s) and is not retried: the next beat is.
* An answered beat renews the listed attempts' leases from its send time; refusals and
  503s mean the operator is absent and stop the lease clock (``lease.LeaseClock``);
  timeouts, resets, other 5xx and 429 let it run.
* After every beat, a running attempt whose lease has lapsed is stopped (``ctx.cancelled``,
  the cancel grace, cancellation) and reported as ``fail`` ``LeaseExpired``, retryable.
* 404 (the operator forgot this worker): register again, then beat at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from .attempt import Stop
from .client import OperatorClient
from .delivery import OutcomeDelivery, Reregister
from .errors import ConfigError, OperatorAbsent, OperatorUnavailable, ProtocolError
from .lease import LeaseClock
from .protocol import Command, HeartbeatRequest
from .slots import AttemptTable
from .timings import Session, Timings

log = logging.getLogger(__name__)

#: The most attempt ids one heartbeat may list (``HeartbeatRequest.attempt_ids``).
MAX_LISTED = 1024
#: Obeys one command; given the lease-clock reading at which the beat was sent.
Obey = Callable[[Command, float], None]


class Heartbeats:
    def __init__(
        self,
        *,
        client: OperatorClient,
        worker_id: str,
        session: Session,
        timings: Timings,
        table: AttemptTable,
        delivery: OutcomeDelivery,
        clock: LeaseClock,
        obey: Obey,
        reregister: Reregister,
        draining: Callable[[], bool],
    ) -> None:
        self._client = client
        self._worker_id = worker_id
        self._session = session
        self._timings = timings
        self._table = table
        self._delivery = delivery
        self._clock = clock
        self._obey = obey
        self._reregister = reregister
        self._draining = draining
        self._wake = asyncio.Event()
        #: The kind of the last failure while beats fail ("absent", ...), else None.
        self._failing: str | None = None

    def wake(self) -> None:
        """Beat now rather than at the end of the interval."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._session.heartbeat_interval)
            self._wake.clear()
            try:
                await self.beat()
            except Exception:  # a bug must not end the heartbeats (and with them every lease)
                log.exception("heartbeat failed unexpectedly")

    def held_ids(self) -> list[str]:
        """Running and stopping attempts first, then reports on their way."""
        held = [a.id for a in self._table.running()]
        held += [i for i in self._delivery.pending_ids if i not in held]
        if len(held) > MAX_LISTED:
            log.error("holding %d attempts; listing the first %d", len(held), MAX_LISTED)
        return held[:MAX_LISTED]

    async def beat(self) -> None:
        request = HeartbeatRequest(attempt_ids=self.held_ids(), draining=self._draining())
        sent_at, sent = self._clock.now(), time.monotonic()
        timeout = self._timings.heartbeat_timeout(self._session.heartbeat_interval)
        try:
            response = await self._client.heartbeat(self._worker_id, request, timeout=timeout)
        except OperatorAbsent as exc:
            self._clock.operator_absent()
            self._failed("absent", f"the operator is absent ({exc}): leases wait for it")
        except OperatorUnavailable as exc:
            self._clock.operator_seen()
            self._failed("unreachable", f"the operator is unreachable ({exc}): leases run down")
        except ProtocolError as exc:
            self._clock.operator_seen()
            if exc.status == 404 and await self._reregister(sent):
                self.wake()  # renew the leases right away
            else:
                self._failed("refused", f"heartbeat refused: {exc}")
        except ConfigError as exc:
            self._failed("not sent", f"heartbeat not sent: {exc}")
        else:
            self._clock.operator_seen()
            self._answered(request, sent_at)
            for command in response.commands:
                self._obey(command, sent_at)
        self._stop_lapsed()

    def _answered(self, request: HeartbeatRequest, sent_at: float) -> None:
        valid_until = sent_at + self._session.lease_seconds
        for attempt_id in request.attempt_ids:
            attempt = self._table.get(attempt_id)
            if attempt is not None:
                attempt.renew(valid_until)
        if self._failing is not None:
            log.info("heartbeats answered again")
            self._failing = None
            self._delivery.operator_back()

    def _failed(self, kind: str, message: str) -> None:
        # Once per kind of trouble, not once per beat through a long outage.
        log.log(logging.DEBUG if kind == self._failing else logging.WARNING, "%s", message)
        self._failing = kind

    def _stop_lapsed(self) -> None:
        for attempt in self._table.running():
            if attempt.stop_cause is None and self._clock.lapsed(attempt.lease_until):
                stop = Stop.lease_expired(self._worker_id, self._session.lease_seconds)
                attempt.stop(stop, self._session.cancel_grace)
