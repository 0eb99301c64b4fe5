"""Leader election with a ``coordination.k8s.io`` Lease, for running several replicas.

Only the holder of the Lease runs the operator (watches, dispatcher, worker API); the
others stand by (``shiftboss.standby`` answers their probes).  The rules are client-go's:

- **Expiry is judged by locally observed time.**  A follower notes on its own monotonic
  clock when it saw the Lease change (holder, renewTime or resourceVersion) and takes
  over only after seeing no change for the Lease's duration.  The holder's timestamps
  are written for people to read; they are never compared with the local clock, so
  clock skew between nodes cannot make a follower take over early (or never).
- **Renewals have a deadline.**  The leader renews every ``retry_seconds``.  When no
  renewal has succeeded within ``renew_deadline_seconds`` of the *sending* of the last
  one that did, it stops acting at once (``stop_acting``, from a timer, even while a
  request hangs) and raises ``LostLeadership``.  A follower's count starts no earlier
  than that renewal landed, so the leader has stopped at least
  ``lease - renew_deadline`` before any follower can take over.
- **Writes are conditional** on the resourceVersion they were decided on: of two
  replicas racing for an expired Lease one wins, the other stays a follower.

(Kopf's own peering pauses Kopf's watches but not the worker API that Shiftboss serves
beside them, so it is not used.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from shiftboss.kube.leases import (
    LeaseConflict,
    LeaseRecord,
    LeaseSpec,
    LeaseStore,
    LeaseUnavailable,
    micro_time,
)
from shiftboss.ownpod import LeaderLabel
from shiftboss.renewal import keep_renewing

log = logging.getLogger("shiftboss.leader")


class LostLeadership(Exception):
    """This replica no longer holds the Lease (or cannot tell in time): it must stop."""


@dataclass(frozen=True)
class ElectionTiming:
    """client-go's three durations: ``LeaseDuration``, ``RenewDeadline``, ``RetryPeriod``."""

    #: Followers take over after seeing the Lease unchanged for this long.
    lease_seconds: float
    #: The leader stops acting when no renewal has succeeded for this long, counted from
    #: the sending of the last one that did.
    renew_deadline_seconds: float
    #: The leader renews, and followers look at the Lease, this often.
    retry_seconds: float

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError(
                "leader election needs 0 < retry_seconds < renew_deadline_seconds < "
                f"lease_seconds, got {self.retry_seconds}, {self.renew_deadline_seconds}, "
                f"{self.lease_seconds}"
            )

    @classmethod
    def for_lease(cls, lease_seconds: float) -> ElectionTiming:
        """client-go's default ratios (15 s / 10 s / 2 s), scaled to ``lease_seconds``.

        The renew deadline is two thirds of the lease: the last third is the margin
        between the leader giving up and the earliest take-over.  Giving up is a timer
        callback that closes the dispatcher synchronously, so the margin only has to
        cover one event-loop iteration already under way and clock-rate drift between
        nodes; a third is generous.  Renewing every 2/15 of the lease leaves five tries
        within the deadline, so one slow or failed request never costs leadership.
        """
        return cls(lease_seconds, lease_seconds * 2 / 3, lease_seconds * 2 / 15)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LeaderElector:
    """Acquire, keep and release the Lease as ``identity``; see the module docstring.

    Time is the running event loop's monotonic clock (``loop.time()``); the wall clock
    (``wall_clock``) only fills in the Lease's human-readable timestamps.
    """

    def __init__(
        self,
        store: LeaseStore,
        timing: ElectionTiming,
        identity: str,
        *,
        wall_clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.store, self.timing, self.identity = store, timing, identity
        self._wall_clock = wall_clock
        #: The Lease as last read or written, and when it was first seen in that form.
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        #: When our last successful write of the Lease was sent.
        self._renewed_at: float | None = None

    async def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        announced = False
        while True:
            try:
                async with asyncio.timeout(self.timing.renew_deadline_seconds):
                    if await self._try_acquire_or_renew():
                        break
            except (LeaseUnavailable, TimeoutError) as exc:
                log.warning("could not read or write the leader Lease: %s", str(exc) or "timed out")
            if not announced:
                log.info(
                    "waiting to become the leader (the Lease is held by %s)",
                    self._other_holder() or "nobody",
                )
                announced = True
            await asyncio.sleep(self._follower_delay())
        log.info("became the leader as %s", self.identity)

    async def keep(self, stop_acting: Callable[[], None]) -> NoReturn:
        """Renew the Lease until cancelled.

        When it cannot be renewed in time, or another replica holds it, calls
        ``stop_acting`` (once, synchronously) and raises ``LostLeadership``.
        """

        async def renew() -> None:
            try:
                renewed = await self._try_acquire_or_renew()
            except LeaseUnavailable as exc:
                log.warning("could not renew the leader Lease (will retry): %s", exc)
                return
            if not renewed and (holder := self._other_holder()):
                raise LostLeadership(f"replica {holder} holds the Lease")
            # else: renewed, or a write race lost to an unknown writer (read again next).

        await keep_renewing(
            renew,
            deadline=self._deadline,
            retry_seconds=self.timing.retry_seconds,
            late=f"the Lease was not renewed within {self.timing.renew_deadline_seconds:g}s",
            lost=LostLeadership,
            what="leadership",
            stop_acting=stop_acting,
            log=log,
        )

    async def release(self) -> None:
        """Hand over at once on a clean stop: followers need not wait for expiry."""
        self._renewed_at = None
        try:
            async with asyncio.timeout(self.timing.renew_deadline_seconds):
                current = await self._observe()
                if current is None or current.spec.holder != self.identity:
                    return
                # As client-go does: no holder, and a 1 s duration for followers that
                # read a holder they have not yet seen change.
                spec = replace(
                    current.spec,
                    holder=None,
                    duration_seconds=1,
                    renew_time=micro_time(self._wall_clock()),
                )
                self._observed = await self.store.update(spec, current.resource_version)
            log.info("released the leader Lease")
        except (LeaseConflict, LeaseUnavailable, TimeoutError) as exc:
            log.warning("could not release the leader Lease: %s", str(exc) or "timed out")

    def _deadline(self) -> float:
        if self._renewed_at is None:
            return -math.inf
        return self._renewed_at + self.timing.renew_deadline_seconds

    def _other_holder(self) -> str | None:
        holder = self._observed.spec.holder if self._observed else None
        return holder if holder != self.identity else None

    def _expires_at(self) -> float:
        """When the observed Lease expires by our own clock (``-inf``: free now)."""
        if self._observed is None or not self._other_holder():
            return -math.inf
        duration = self._observed.spec.duration_seconds or self.timing.lease_seconds
        return self._observed_at + duration

    def _follower_delay(self) -> float:
        """Look again after the retry period, or exactly when the Lease expires if sooner."""
        remaining = self._expires_at() - asyncio.get_running_loop().time()
        return (
            min(self.timing.retry_seconds, remaining)
            if remaining > 0
            else self.timing.retry_seconds
        )

    async def _observe(self) -> LeaseRecord | None:
        record = await self.store.get()
        self._note(record)
        return record

    def _note(self, record: LeaseRecord | None) -> None:
        """Remember ``record``; restart the silence count when it differs from the last."""
        last = self._observed
        if record is None or last is None or record.changed_since(last):
            self._observed_at = asyncio.get_running_loop().time()
        self._observed = record

    async def _try_acquire_or_renew(self) -> bool:
        """One attempt to take or renew the Lease; True when we hold it afterwards."""
        loop = asyncio.get_running_loop()
        current = self._observed
        if current is None or current.spec.holder != self.identity:
            current = await self._observe()
        # else: we wrote it last; renew on that resourceVersion, saving a read.
        if current is not None and self._other_holder() and loop.time() < self._expires_at():
            return False
        sent = loop.time()
        try:
            if current is None:
                written = await self.store.create(self._claim(None))
            else:
                written = await self.store.update(
                    self._claim(current.spec), current.resource_version
                )
        except LeaseConflict:
            self._observed = None  # changed under us: read it afresh next time
            return False
        self._note(written)
        self._renewed_at = sent
        return True

    def _claim(self, previous: LeaseSpec | None) -> LeaseSpec:
        now = micro_time(self._wall_clock())
        duration = math.ceil(self.timing.lease_seconds)
        if previous is not None and previous.holder == self.identity:
            return replace(previous, duration_seconds=duration, renew_time=now)
        return LeaseSpec(
            holder=self.identity,
            duration_seconds=duration,
            acquire_time=now,
            renew_time=now,
            transitions=previous.transitions + 1 if previous is not None else 0,
        )


async def run_elected(
    elector: LeaderElector,
    operate: Callable[[], Coroutine[Any, Any, None]],
    *,
    standing_by: AbstractAsyncContextManager[object],
    stop_acting: Callable[[], None],
    leader_label: LeaderLabel | None = None,
) -> int:
    """Stand by (inside ``standing_by``) until elected, then ``operate`` while leading.

    The standby keeps answering probes while ``operate`` restores its state; ``operate``
    stops it just before it binds the same address (``App.before_listen``), and leaving
    ``standing_by`` stops it at the latest (stopping twice is harmless).

    ``leader_label`` (``shiftboss.ownpod``) marks the replica's own pod as the leader's,
    for the Service: removed before standing by, set on election before ``operate``
    starts, removed on losing the Lease and before releasing it.  Each step waits for
    its patch up to the renew deadline, or until one attempt failed; the label then goes
    on being retried beside it.

    Returns the process exit status: 0 after ``operate`` returned (the Lease is
    released), 1 after leadership was lost (``stop_acting`` has been called, then
    ``operate`` cancelled), so that the pod restarts as a standby.
    """
    label = leader_label if leader_label is not None else LeaderLabel(None, None)
    settle_seconds = elector.timing.renew_deadline_seconds

    async def lead() -> None:
        label.want(True)
        await label.settle(settle_seconds)  # routed here before /v1 is served, if possible
        await operate()

    async with label:
        # Before the standby answers /readyz: a former leader's pod must not stay routed.
        await label.settle(settle_seconds)
        async with standing_by:
            await elector.acquire()
            keeper = asyncio.create_task(elector.keep(stop_acting), name="leader lease")
            operator = asyncio.create_task(lead(), name="operator")
            await asyncio.wait({keeper, operator}, return_when=asyncio.FIRST_COMPLETED)
            label.want(False)
            if keeper.done():  # keep() has stopped acting already; now stop the rest
                operator.cancel()
                await asyncio.gather(operator, keeper, return_exceptions=True)
                await label.settle(settle_seconds)
                return 1
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await label.settle(settle_seconds)  # before a new leader can label its own pod
            await elector.release()
            operator.result()  # a crash of the operator still surfaces, after the release
            return 0
