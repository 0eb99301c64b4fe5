"""Shard claims: several operators, each serving its own namespaces, never two at once.

A *shard* is one operator deployment (its replicas share the shard's name, ``--shard``).
Before it starts serving, the shard claims what it serves with ``coordination.k8s.io``
Leases whose holder is the shard's name:

- a namespaced shard claims the Lease ``shiftboss-shard`` in each of its namespaces;
- a cluster-wide shard claims the Lease ``shiftboss-all-namespaces`` in the namespace
  ``default`` (a fixed place every shard can find without listing), and lists the
  ``shiftboss-shard`` Leases of every namespace.

Each side writes its own claims first and only then reads the other kind, so of a
namespaced and a cluster-wide shard starting at the same instant at least one sees the
other.  Claims of one kind are taken with conditional writes: of two shards racing for a
namespace one wins, the other sees the winner and refuses.

**Liveness is judged by locally observed change**, as ``shiftboss.leader`` judges the
leader Lease: a claim held by another shard is watched; if it is renewed (any change)
the other shard is alive and this operator refuses to run (``ShardRefused``, exit 2); if
it stays unchanged for its whole ``leaseDurationSeconds`` it has expired and is taken
over.  A claim held by this shard's own name (a replica of this shard, or this operator
before a crash) is taken at once; a released one (no holder) too.

While the operator runs, the claims are renewed every ``retry_seconds``; when one has
not been renewed within ``renew_deadline_seconds`` (or another shard holds it), the
operator stops acting at once and ``LostShard`` is raised (exit 1), before any other
shard can take the claim over.  A clean stop releases the claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NoReturn, TypeVar

from shiftboss.kube.leases import (
    LeaseConflict,
    LeaseDirectory,
    LeaseForbidden,
    LeaseNamespaceMissing,
    LeaseRecord,
    LeaseSpec,
    LeaseStore,
    LeaseUnavailable,
    micro_time,
)
from shiftboss.leader import ElectionTiming
from shiftboss.renewal import keep_renewing

log = logging.getLogger("shiftboss.shards")

#: The claim Lease a namespaced shard holds in each namespace it serves.
SHARD_LEASE = "shiftboss-shard"
#: The claim Lease a cluster-wide shard holds, in ``ALL_NAMESPACES_HOME``.
ALL_NAMESPACES_LEASE = "shiftboss-all-namespaces"
#: A namespace every cluster has, where any shard can read the cluster-wide claim.
ALL_NAMESPACES_HOME = "default"
#: Conflicting writes tolerated while taking one claim before giving up.
WRITE_RACES = 5

T = TypeVar("T")


class ShardRefused(Exception):
    """This operator must not run: another shard serves one of its namespaces (or its
    claims cannot be read or written at all).  The message says what to do."""


class LostShard(Exception):
    """A claim was not renewed in time, or another shard holds it: the operator stops."""


@dataclass(frozen=True)
class ClaimRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class _Held:
    store: LeaseStore
    record: LeaseRecord
    #: Event-loop time at which our last successful write of the claim was sent.
    renewed_at: float


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ShardClaims:
    """Claim, check, renew and release the Leases of shard ``shard``.

    ``namespaces`` are those the operator serves; empty means every namespace.  Time is
    the running event loop's monotonic clock; ``wall_clock`` only fills in the Leases'
    human-readable timestamps.
    """

    def __init__(
        self,
        leases: LeaseDirectory,
        shard: str,
        namespaces: Sequence[str],
        timing: ElectionTiming,
        *,
        wall_clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.leases, self.shard, self.timing = leases, shard, timing
        self.namespaces = sorted(set(namespaces))
        self._wall_clock = wall_clock
        self._held: dict[ClaimRef, _Held] = {}

    @property
    def own(self) -> list[ClaimRef]:
        """The claims this shard holds while it runs."""
        if not self.namespaces:
            return [ClaimRef(ALL_NAMESPACES_HOME, ALL_NAMESPACES_LEASE)]
        return [ClaimRef(namespace, SHARD_LEASE) for namespace in self.namespaces]

    @property
    def held(self) -> list[ClaimRef]:
        return sorted(self._held, key=str)

    # -- at start --------------------------------------------------------------------

    async def take(self) -> None:
        """Take every claim of ``own``; ``ShardRefused`` (having released what was
        taken) when another shard holds one and renews it."""
        try:
            await _all(self._take(ref) for ref in self.own)
        except ShardRefused:
            await self.release()
            raise
        scope = ", ".join(self.namespaces) if self.namespaces else "all namespaces"
        log.info("shard %s claims %s", self.shard, scope)

    async def check_others(self) -> None:
        """Refuse (``ShardRefused``) when a claim of the other kind is live: for a
        namespaced shard the cluster-wide claim, for a cluster-wide shard any namespace's.
        Expired claims of the other kind are left alone."""
        if self.namespaces:
            ref = ClaimRef(ALL_NAMESPACES_HOME, ALL_NAMESPACES_LEASE)
            store = self.leases.store(ref.namespace, ref.name)
            await self._until_free(ref, store, await self._read(ref, store))
            return
        claims = await self._retrying(
            f"the {SHARD_LEASE} Leases of all namespaces",
            lambda: self.leases.list_named(SHARD_LEASE),
        )
        await _all(
            self._until_free(ref, self.leases.store(ref.namespace, ref.name), record)
            for ref, record in (
                (ClaimRef(namespace, SHARD_LEASE), record) for namespace, record in claims.items()
            )
            if self._foreign(record)
        )

    async def _take(self, ref: ClaimRef) -> None:
        loop = asyncio.get_running_loop()
        store = self.leases.store(ref.namespace, ref.name)
        races = 0
        while True:
            free = await self._until_free(ref, store, await self._read(ref, store))
            sent = loop.time()
            try:
                if free is None:
                    record = await store.create(self._claim(None))
                else:
                    record = await store.update(self._claim(free.spec), free.resource_version)
            except LeaseNamespaceMissing:
                raise ShardRefused(
                    f"namespace {ref.namespace} does not exist: create it, or remove it from "
                    "--namespace (claims are Leases in the namespaces served)"
                ) from None
            except LeaseConflict:
                races += 1  # written meanwhile: judge it afresh
                if races >= WRITE_RACES:
                    raise ShardRefused(
                        f"the Lease {ref} changed under every one of {WRITE_RACES} tries to "
                        "claim it: another operator is writing it; see docs/sharding.md"
                    ) from None
                continue
            except LeaseForbidden as exc:
                raise self._forbidden(ref, exc) from exc
            except LeaseUnavailable as exc:  # it may have landed: the next read tells
                log.warning("could not write the claim %s (will retry): %s", ref, exc)
                await asyncio.sleep(self.timing.retry_seconds)
                continue
            self._held[ref] = _Held(store, record, sent)
            return

    async def _until_free(
        self, ref: ClaimRef, store: LeaseStore, record: LeaseRecord | None
    ) -> LeaseRecord | None:
        """Watch a claim until it is free (returns it as last read, None when there is
        none) or proven live (``ShardRefused``).  Free: absent, released, held by this
        shard, or unchanged for its whole duration since we first read it."""
        loop = asyncio.get_running_loop()
        seen_at = loop.time()
        announced = False
        while record is not None and self._foreign(record):
            duration = record.spec.duration_seconds or self.timing.lease_seconds
            remaining = seen_at + duration - loop.time()
            if remaining <= 0:
                log.warning(
                    "the claim %s of shard %s expired (unchanged for %ss)",
                    ref,
                    record.spec.holder,
                    duration,
                )
                return record
            if not announced:
                log.info(
                    "watching the claim %s of shard %s: it is live if it is renewed, "
                    "expired if it stays unchanged for %ss",
                    ref,
                    record.spec.holder,
                    duration,
                )
                announced = True
            await asyncio.sleep(min(self.timing.retry_seconds, remaining))
            current = await self._read(ref, store)
            if current is not None and self._foreign(current) and current.changed_since(record):
                raise self._refusal(ref, current.spec.holder or "", duration)
            record = current
        return record

    async def _read(self, ref: ClaimRef, store: LeaseStore) -> LeaseRecord | None:
        return await self._retrying(f"the Lease {ref}", store.get)

    async def _retrying(self, what: str, read: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``read()``, retried every ``retry_seconds`` while the API server is unavailable
        (as leader election waits); refused at once when RBAC forbids it."""
        while True:
            try:
                return await read()
            except LeaseForbidden as exc:
                raise self._forbidden(what, exc) from exc
            except LeaseUnavailable as exc:
                log.warning("could not read %s (will retry): %s", what, exc)
                await asyncio.sleep(self.timing.retry_seconds)

    # -- while running ---------------------------------------------------------------

    async def keep(self, stop_acting: Callable[[], None]) -> NoReturn:
        """Renew every held claim until cancelled.

        When one cannot be renewed within the renew deadline, or another shard holds
        it, calls ``stop_acting`` (once, synchronously) and raises ``LostShard``.
        """

        async def renew() -> None:
            await asyncio.gather(*(self._renew(ref) for ref in self._held))

        await keep_renewing(
            renew,
            deadline=self._deadline,
            retry_seconds=self.timing.retry_seconds,
            late=f"a claim was not renewed within {self.timing.renew_deadline_seconds:g}s",
            lost=LostShard,
            what="the shard's claims",
            stop_acting=stop_acting,
            log=log,
        )

    def _deadline(self) -> float:
        if not self._held:
            return -math.inf
        oldest = min(held.renewed_at for held in self._held.values())
        return oldest + self.timing.renew_deadline_seconds

    async def _renew(self, ref: ClaimRef) -> None:
        """One try at renewing ``ref``; failures to reach the API server are left to the
        deadline, another holder raises ``LostShard``."""
        held = self._held[ref]
        sent = asyncio.get_running_loop().time()
        try:
            held.record = await held.store.update(
                self._claim(held.record.spec), held.record.resource_version
            )
            held.renewed_at = sent
        except LeaseConflict:
            await self._reread(ref, held)
        except LeaseUnavailable as exc:
            log.warning("could not renew the claim %s (will retry): %s", ref, exc)

    async def _reread(self, ref: ClaimRef, held: _Held) -> None:
        """After a conflicting renewal: still ours (an answer lost on the wire) means
        renew from what is there next time; another holder means lost."""
        try:
            current = await held.store.get()
        except LeaseUnavailable as exc:
            log.warning("could not read the claim %s (will retry): %s", ref, exc)
            return
        if current is not None and current.spec.holder != self.shard:
            raise LostShard(f"shard {current.spec.holder or '(none)'} holds the claim {ref}")
        if current is None:  # deleted by hand: claim it again, conditionally
            with contextlib.suppress(LeaseConflict, LeaseUnavailable):
                sent = asyncio.get_running_loop().time()
                held.record, held.renewed_at = await held.store.create(self._claim(None)), sent
            return
        held.record = current

    # -- at the end ------------------------------------------------------------------

    async def release(self) -> None:
        """Give every held claim up at once (no holder, a 1 s duration, as leader
        election does), so that a successor need not wait for expiry."""
        held, self._held = self._held, {}
        if not held:
            return
        try:
            async with asyncio.timeout(self.timing.renew_deadline_seconds):
                await asyncio.gather(*(self._release(ref, claim) for ref, claim in held.items()))
        except TimeoutError:
            log.warning("could not release every claim in time: the rest will expire")
        log.info("shard %s released its claims", self.shard)

    async def _release(self, ref: ClaimRef, held: _Held) -> None:
        record: LeaseRecord | None = held.record
        for _ in range(3):  # a renewal cancelled in flight may have landed: read, again
            if record is None or record.spec.holder != self.shard:
                return  # gone, released, or taken over: nothing of ours to give up
            spec = replace(
                record.spec,
                holder=None,
                duration_seconds=1,
                renew_time=micro_time(self._wall_clock()),
            )
            try:
                try:
                    await held.store.update(spec, record.resource_version)
                    return
                except LeaseConflict:
                    record = await held.store.get()
            except LeaseUnavailable as exc:
                log.warning("could not release the claim %s (it will expire): %s", ref, exc)
                return
        log.warning("could not release the claim %s (it kept changing): it will expire", ref)

    # -- helpers ---------------------------------------------------------------------

    def _foreign(self, record: LeaseRecord) -> bool:
        return record.spec.holder not in (None, self.shard)

    def _claim(self, previous: LeaseSpec | None) -> LeaseSpec:
        now = micro_time(self._wall_clock())
        duration = math.ceil(self.timing.lease_seconds)
        if previous is not None and previous.holder == self.shard:
            return replace(previous, duration_seconds=duration, renew_time=now)
        return LeaseSpec(
            holder=self.shard,
            duration_seconds=duration,
            acquire_time=now,
            renew_time=now,
            transitions=previous.transitions + 1 if previous is not None else 0,
        )

    def _refusal(self, ref: ClaimRef, holder: str, duration: int | float) -> ShardRefused:
        theirs = "all namespaces" if ref.name == ALL_NAMESPACES_LEASE else ref.namespace
        mine = ", ".join(self.namespaces) if self.namespaces else "all namespaces"
        return ShardRefused(
            f"shard {holder!r} serves {theirs} (its Lease {ref} was renewed while we "
            f"watched), and this shard ({self.shard!r}) would serve {mine}: two shards must "
            "never serve the same namespace. Give the shards --namespace sets that do not "
            "overlap (an operator without --namespace serves all namespaces), or give "
            f"replicas of one shard the same --shard. If shard {holder!r} has been stopped "
            f"for good, its claim expires {duration:g}s after its last renewal: start this "
            "operator again then (see docs/sharding.md)."
        )

    def _forbidden(self, what: ClaimRef | str, exc: Exception) -> ShardRefused:
        return ShardRefused(
            f"cannot read or write {what}: {exc}. The operator's service account needs get, "
            "create and update on leases.coordination.k8s.io in every namespace it serves "
            f"and get in {ALL_NAMESPACES_HOME!r} (a cluster-wide operator: list in all "
            "namespaces, create and update in "
            f"{ALL_NAMESPACES_HOME!r}); see docs/sharding.md"
        )


async def _all(coros: Iterable[Coroutine[Any, Any, object]]) -> None:
    """Run ``coros`` together; the first failure cancels the others and is raised as is."""
    try:
        async with asyncio.TaskGroup() as group:
            for coro in coros:
                group.create_task(coro)
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None


async def run_claimed(
    claims: ShardClaims,
    operate: Callable[[], Coroutine[Any, Any, None]],
    *,
    stop_acting: Callable[[], None],
) -> None:
    """Take the shard's claims, check the other kind, then ``operate`` while renewing.

    Raises ``ShardRefused`` before ``operate`` starts (claims released), ``LostShard``
    after ``stop_acting`` was called and ``operate`` cancelled.  When ``operate``
    returns or fails, the claims are released first.
    """

    async def checked() -> None:
        await claims.check_others()
        await operate()

    await claims.take()
    keeper = asyncio.create_task(claims.keep(stop_acting), name="shard claims")
    operator = asyncio.create_task(checked(), name="operator")
    try:
        await asyncio.wait({keeper, operator}, return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when we are cancelled (leadership lost): nothing left running
        if not keeper.done() or not operator.done():
            for task in (keeper, operator):
                task.cancel()
            await asyncio.gather(keeper, operator, return_exceptions=True)
    if not operator.done() or operator.cancelled():
        keeper.result()  # LostShard
    await claims.release()
    operator.result()  # ShardRefused, or a crash of the operator, after the release
