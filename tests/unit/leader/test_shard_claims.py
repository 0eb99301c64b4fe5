"""Shard claims (``shiftboss.shards``) against in-memory Leases, in virtual time.

Every time below is exact (see ``lease_fakes``).  ``TIMING`` is a 15 s claim: renewed
every 2 s, given up 10 s after the last renewal that landed.  Another shard is another
``ShardClaims`` on the same Leases, so that "live" means really renewing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import pytest
from lease_fakes import FakeLeaseBackend, FakeLeaseClient, Fault, forever, now, run_virtual

from shiftboss.cli import _loop_factory, main
from shiftboss.kube.leases import (
    LeaseConflict,
    LeaseForbidden,
    LeaseNamespaceMissing,
    LeaseRecord,
    LeaseSpec,
    LeaseStore,
)
from shiftboss.leader import ElectionTiming
from shiftboss.shards import (
    ALL_NAMESPACES_HOME,
    ALL_NAMESPACES_LEASE,
    SHARD_LEASE,
    LostShard,
    ShardClaims,
    ShardRefused,
    run_claimed,
)

TIMING = ElectionTiming.for_lease(15)
LEASE, DEADLINE, RETRY = 15.0, 10.0, 2.0


class FakeLeases:
    """Every Lease of a fake cluster (``shiftboss.kube.leases.LeaseDirectory``)."""

    def __init__(self) -> None:
        self.backends: dict[tuple[str, str], FakeLeaseBackend] = {}
        self.forbidden = False
        #: Namespaces that do not exist: a Lease cannot be created there.
        self.missing: set[str] = set()

    def backend(self, namespace: str, name: str = SHARD_LEASE) -> FakeLeaseBackend:
        return self.backends.setdefault((namespace, name), FakeLeaseBackend())

    def for_shard(self, shard: str) -> ShardView:
        return ShardView(self, shard)

    def holder(self, namespace: str, name: str = SHARD_LEASE) -> str | None:
        record = self.backend(namespace, name).record
        return record.spec.holder if record else None


class ShardView:
    """One shard's connection to the fake cluster; its writes are recorded as ``shard``."""

    def __init__(self, leases: FakeLeases, shard: str) -> None:
        self.leases, self.shard = leases, shard
        self.clients: list[FakeLeaseClient] = []

    def store(self, namespace: str, name: str) -> LeaseStore:
        client = self.leases.backend(namespace, name).client(self.shard)
        self.clients.append(client)
        return NoNamespace() if namespace in self.leases.missing else client

    async def list_named(self, name: str) -> dict[str, LeaseRecord]:
        await asyncio.sleep(0)
        if self.leases.forbidden:
            raise LeaseForbidden('403 Forbidden: leases is forbidden: cannot list "leases"')
        return {
            namespace: backend.record
            for (namespace, lease), backend in self.leases.backends.items()
            if lease == name and backend.record is not None
        }

    def break_(self, fault: Fault) -> None:
        for client in self.clients:
            client.fault = fault


class NoNamespace:
    """A Lease in a namespace that does not exist, as the API server answers for it."""

    async def get(self) -> LeaseRecord | None:
        return None

    async def create(self, spec: LeaseSpec) -> LeaseRecord:
        raise LeaseNamespaceMissing('404 NotFound: namespaces "nowhere" not found')

    async def update(self, spec: LeaseSpec, resource_version: str) -> LeaseRecord:
        raise LeaseConflict("404 NotFound")


def claims(leases: FakeLeases, shard: str, *namespaces: str) -> tuple[ShardClaims, ShardView]:
    view = leases.for_shard(shard)
    return ShardClaims(view, shard, list(namespaces), TIMING), view


async def running(shard_claims: ShardClaims) -> asyncio.Task[None]:
    """Take the claims and keep renewing them in the background, as a live shard does."""
    await shard_claims.take()
    return asyncio.create_task(shard_claims.keep(lambda: None))


async def stopped(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class StopRecorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self) -> None:
        self.calls.append(now())


def put(leases: FakeLeases, namespace: str, holder: str | None, name: str = SHARD_LEASE) -> None:
    """A claim written once by someone who then went away."""
    leases.backend(namespace, name).put(LeaseSpec(holder=holder, duration_seconds=15))


# -- taking claims ---------------------------------------------------------------------


def test_free_namespaces_are_claimed_at_once():
    async def scenario():
        leases = FakeLeases()
        alpha, _ = claims(leases, "alpha", "b", "a")
        await alpha.take()
        assert now() == 0.0
        assert [str(ref) for ref in alpha.held] == ["a/shiftboss-shard", "b/shiftboss-shard"]
        for namespace in ("a", "b"):
            record = leases.backend(namespace).record
            assert record is not None
            assert (record.spec.holder, record.spec.duration_seconds) == ("alpha", 15)
            assert record.spec.renew_time is not None

    run_virtual(scenario())


def test_a_namespace_a_live_shard_serves_is_refused_with_what_to_do():
    async def scenario():
        leases = FakeLeases()
        beta, _ = claims(leases, "beta", "b")
        beta_keeper = await running(beta)
        await asyncio.sleep(0.5)
        alpha, _ = claims(leases, "alpha", "a", "b")
        with pytest.raises(ShardRefused) as refused:
            await alpha.take()
        # Refused as soon as beta's next renewal is seen: one renewal period.
        assert now() == 0.5 + RETRY
        message = str(refused.value)
        assert "shard 'beta' serves b (its Lease b/shiftboss-shard was renewed" in message
        assert "this shard ('alpha') would serve a, b" in message
        assert "--namespace sets that do not overlap" in message
        assert "its claim expires 15s after its last renewal" in message
        # Nothing of the refused shard stays claimed; beta keeps its own.
        assert leases.holder("a") is None
        assert alpha.held == []
        assert leases.holder("b") == "beta"
        await stopped(beta_keeper)

    run_virtual(scenario())


def test_a_claim_left_by_a_shard_that_is_gone_is_taken_after_one_unchanged_lease():
    async def scenario():
        leases = FakeLeases()
        put(leases, "a", "beta")
        alpha, _ = claims(leases, "alpha", "a")
        await alpha.take()
        assert now() == LEASE  # judged by what we saw, not by the Lease's timestamps
        record = leases.backend("a").record
        assert record is not None
        assert (record.spec.holder, record.spec.transitions) == ("alpha", 1)

    run_virtual(scenario())


@pytest.mark.parametrize("holder", ["alpha", None], ids=["same-shard", "released"])
def test_a_claim_of_the_same_shard_or_a_released_one_is_taken_at_once(holder):
    async def scenario():
        leases = FakeLeases()
        put(leases, "a", holder)
        alpha, _ = claims(leases, "alpha", "a")
        await alpha.take()
        assert now() == 0.0
        assert leases.holder("a") == "alpha"

    run_virtual(scenario())


def test_two_shards_racing_for_a_namespace_one_wins_the_other_is_refused():
    async def scenario():
        leases = FakeLeases()
        alpha, _ = claims(leases, "alpha", "a")
        beta, _ = claims(leases, "beta", "a")
        outcomes = await asyncio.gather(running(alpha), running(beta), return_exceptions=True)
        won = [o for o in outcomes if isinstance(o, asyncio.Task)]
        refused = [o for o in outcomes if isinstance(o, ShardRefused)]
        assert (len(won), len(refused)) == (1, 1), outcomes
        winner = "alpha" if outcomes[0] is won[0] else "beta"
        assert leases.holder("a") == winner
        await stopped(won[0])

    run_virtual(scenario())


def test_forbidden_by_rbac_is_refused_with_the_permissions_needed():
    async def scenario():
        leases = FakeLeases()
        leases.forbidden = True
        alpha, _ = claims(leases, "alpha")  # cluster-wide: it must list every namespace
        await alpha.take()
        with pytest.raises(ShardRefused, match="needs get, create and update on leases"):
            await alpha.check_others()

    run_virtual(scenario())


def test_a_namespace_that_does_not_exist_is_refused_by_name():
    async def scenario():
        leases = FakeLeases()
        leases.missing.add("nowhere")
        alpha, _ = claims(leases, "alpha", "a", "nowhere")
        with pytest.raises(ShardRefused, match="namespace nowhere does not exist: create it"):
            await alpha.take()
        assert leases.holder("a") is None

    run_virtual(scenario())


# -- cluster-wide against namespaced ----------------------------------------------------


def test_a_cluster_wide_shard_is_refused_while_a_namespaced_shard_serves():
    async def scenario():
        leases = FakeLeases()
        put(leases, "old", "gone")  # expired: no obstacle, and left alone
        beta_keeper = await running(claims(leases, "beta", "b")[0])
        await asyncio.sleep(0.5)
        everything, _ = claims(leases, "alpha")
        await everything.take()
        assert leases.holder(ALL_NAMESPACES_HOME, ALL_NAMESPACES_LEASE) == "alpha"
        with pytest.raises(ShardRefused, match=r"shard 'beta' serves b .* would serve all"):
            await everything.check_others()
        assert now() == 0.5 + RETRY
        assert leases.holder("old") == "gone"
        await stopped(beta_keeper)

    run_virtual(scenario())


def test_a_namespaced_shard_is_refused_while_a_cluster_wide_shard_serves():
    async def scenario():
        leases = FakeLeases()
        beta_keeper = await running(claims(leases, "beta")[0])
        alpha, _ = claims(leases, "alpha", "a")
        started: list[float] = []

        async def operate() -> None:
            started.append(now())

        with pytest.raises(ShardRefused, match="shard 'beta' serves all namespaces"):
            await run_claimed(alpha, operate, stop_acting=StopRecorder())
        assert started == []
        assert leases.holder("a") is None  # released on the way out
        await stopped(beta_keeper)

    run_virtual(scenario())


def test_a_cluster_wide_shard_runs_when_the_namespaced_claims_have_expired():
    async def scenario():
        leases = FakeLeases()
        put(leases, "a", "beta")
        put(leases, "b", None)
        everything, _ = claims(leases, "alpha")
        await everything.take()
        await everything.check_others()
        assert now() == LEASE

    run_virtual(scenario())


# -- while running ---------------------------------------------------------------------


@pytest.mark.parametrize("fault", [Fault.HANG, Fault.HANG_AFTER_WRITE, Fault.ERROR])
def test_claims_not_renewed_within_the_deadline_stop_the_operator(fault):
    async def scenario():
        leases = FakeLeases()
        alpha, view = claims(leases, "alpha", "a", "b")
        await alpha.take()
        stop = StopRecorder()
        keeper = asyncio.create_task(alpha.keep(stop))
        await asyncio.sleep(7)  # renewals at 2, 4 and 6 land
        view.break_(fault)
        with pytest.raises(LostShard, match="not renewed within 10s"):
            await keeper
        assert stop.calls == [6.0 + DEADLINE]  # once, at the deadline to the tick
        assert leases.backend("a").write_times("alpha")[:4] == [0.0, 2.0, 4.0, 6.0]

    run_virtual(scenario())


def test_one_failed_renewal_costs_nothing():
    async def scenario():
        leases = FakeLeases()
        alpha, view = claims(leases, "alpha", "a")
        await alpha.take()
        stop = StopRecorder()
        keeper = asyncio.create_task(alpha.keep(stop))
        await asyncio.sleep(5)
        view.break_(Fault.ERROR)
        await asyncio.sleep(6)  # renewals at 6, 8 and 10 fail; 12 lands before the deadline (14)
        view.break_(Fault.NONE)
        await asyncio.sleep(10)
        assert not keeper.done() and stop.calls == []
        assert leases.backend("a").write_times("alpha")[-1] == 20.0
        await stopped(keeper)

    run_virtual(scenario())


def test_a_claim_taken_by_another_shard_stops_the_operator_at_the_next_renewal():
    async def scenario():
        leases = FakeLeases()
        alpha, _ = claims(leases, "alpha", "a")
        await alpha.take()
        stop = StopRecorder()
        keeper = asyncio.create_task(alpha.keep(stop))
        await asyncio.sleep(3)
        put(leases, "a", "beta")
        with pytest.raises(LostShard, match="shard beta holds the claim a/shiftboss-shard"):
            await keeper
        assert stop.calls == [4.0]

    run_virtual(scenario())


def test_run_claimed_releases_the_claims_when_the_operator_stops():
    async def scenario():
        leases = FakeLeases()
        alpha, _ = claims(leases, "alpha", "a")

        async def operate() -> None:
            assert leases.holder("a") == "alpha"
            await asyncio.sleep(29)  # renewed at 2, 4, ..., 28

        await run_claimed(alpha, operate, stop_acting=StopRecorder())
        record = leases.backend("a").record
        assert record is not None
        assert (record.spec.holder, record.spec.duration_seconds) == (None, 1)
        assert len(leases.backend("a").write_times("alpha")) == 1 + 14 + 1  # take, renew, release

    run_virtual(scenario())


def test_run_claimed_cancels_the_operator_when_the_claims_are_lost():
    async def scenario():
        leases = FakeLeases()
        alpha, view = claims(leases, "alpha", "a")
        stop = StopRecorder()
        cancelled: list[float] = []

        async def operate() -> None:
            view.break_(Fault.HANG)
            try:
                await forever()
            finally:
                cancelled.append(now())

        with pytest.raises(LostShard):
            await run_claimed(alpha, operate, stop_acting=stop)
        assert stop.calls == [DEADLINE]
        assert cancelled == [DEADLINE]

    run_virtual(scenario())


# -- flags -----------------------------------------------------------------------------


@pytest.mark.parametrize("shard", ["Shard-A", "-a", "a_b", "x" * 64])
def test_a_shard_name_that_is_not_a_dns_label_is_refused_naming_the_flag(shard, capsys):
    assert main(["run", f"--shard={shard}", "--kubeconfig", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "--shard (or SHIFTBOSS_SHARD): Value error, must be a DNS-1123 label" in err
    assert re.search(r"got '[^']*'", err)


def test_the_operator_runs_on_uvloop_unless_told_not_to():
    import uvloop

    assert _loop_factory(True) is uvloop.new_event_loop
    assert _loop_factory(False) is None


def test_a_renewal_that_landed_unseen_does_not_keep_the_claim_from_being_released():
    async def scenario():
        leases = FakeLeases()
        alpha, _ = claims(leases, "alpha", "a")
        await alpha.take()
        # A renewal was cancelled in flight but landed: the Lease moved on without us.
        backend = leases.backend("a")
        assert backend.record is not None
        backend.put(backend.record.spec, writer="alpha")

        await alpha.release()

        assert leases.holder("a") is None

    run_virtual(scenario())
