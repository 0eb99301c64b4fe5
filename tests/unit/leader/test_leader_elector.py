"""The leader elector (``shiftboss.leader``) against an in-memory Lease, in virtual time.

Every time below is exact: the loop's clock only moves when nothing is ready, straight to
the next timer.  ``TIMING`` is client-go's default: a 15 s lease, a 10 s renew deadline,
a renewal every 2 s.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from lease_fakes import FakeLeaseBackend, Fault, now, run_virtual

from shiftboss.kube.leases import LeaseSpec, micro_time
from shiftboss.leader import ElectionTiming, LeaderElector, LostLeadership

TIMING = ElectionTiming.for_lease(15)
LEASE, DEADLINE, RETRY = 15.0, 10.0, 2.0


class StopRecorder:
    """The ``stop_acting`` callback: records when it was called."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self) -> None:
        self.calls.append(now())


def test_timing_keeps_client_go_ratios_with_a_margin_before_take_over():
    assert (TIMING.lease_seconds, TIMING.renew_deadline_seconds, TIMING.retry_seconds) == (
        LEASE,
        DEADLINE,
        RETRY,
    )
    short = ElectionTiming.for_lease(3)
    assert short.renew_deadline_seconds + 1 == pytest.approx(short.lease_seconds)
    with pytest.raises(ValueError, match="renew_deadline_seconds < lease_seconds"):
        ElectionTiming(lease_seconds=10, renew_deadline_seconds=10, retry_seconds=2)


@pytest.mark.parametrize("fault", [Fault.HANG, Fault.HANG_AFTER_WRITE, Fault.ERROR])
def test_a_leader_that_cannot_renew_stops_before_a_follower_can_take_over(fault):
    async def scenario():
        backend = FakeLeaseBackend()
        leader_client = backend.client("a")
        leader = LeaderElector(leader_client, TIMING, "a")
        follower = LeaderElector(backend.client("b"), TIMING, "b")
        await leader.acquire()
        stop = StopRecorder()
        keeper = asyncio.create_task(leader.keep(stop))
        following = asyncio.create_task(follower.acquire())
        await asyncio.sleep(7)  # renewals at 2, 4 and 6 succeed
        leader_client.fault = fault
        with pytest.raises(LostLeadership, match="not renewed within 10s"):
            await keeper
        last_success = leader_client.answered_writes[-1]
        assert last_success == 6.0
        assert stop.calls == [last_success + DEADLINE]  # at the deadline, to the tick

        await following
        took_over = now()
        # The follower counts a whole lease from the last write it saw land (for
        # HANG_AFTER_WRITE, the renewal at 8 that the leader never heard back about).
        last_landed = backend.write_times("a")[-1]
        assert took_over == pytest.approx(last_landed + LEASE)
        assert took_over - stop.calls[0] >= LEASE - DEADLINE
        assert backend.record is not None and backend.record.spec.holder == "b"

    run_virtual(scenario())


@pytest.mark.parametrize(
    ("renewed_ago", "holder_duration", "expected_wait"),
    [
        (dt.timedelta(hours=1), 15, 15.0),  # the holder's clock is far behind ours
        (-dt.timedelta(hours=1), 15, 15.0),  # ... or far ahead
        (dt.timedelta(days=3650), 40, 40.0),  # the holder's lease duration counts
    ],
)
def test_a_follower_waits_one_lease_of_observed_silence_whatever_the_clocks_say(
    renewed_ago, holder_duration, expected_wait
):
    our_wall_clock = dt.datetime(2031, 5, 4, 3, 2, 1, tzinfo=dt.UTC)

    async def scenario():
        backend = FakeLeaseBackend()
        holder_clock = our_wall_clock - renewed_ago
        backend.put(
            LeaseSpec(
                holder="silent",
                duration_seconds=holder_duration,
                acquire_time=micro_time(holder_clock),
                renew_time=micro_time(holder_clock),
                transitions=4,
            )
        )
        await asyncio.sleep(100)  # written long before the follower starts
        follower = LeaderElector(
            backend.client("b"), TIMING, "b", wall_clock=lambda: our_wall_clock
        )
        started = now()
        await follower.acquire()
        assert now() - started == pytest.approx(expected_wait)
        record = backend.record
        assert record is not None
        assert record.spec == LeaseSpec(
            holder="b",
            duration_seconds=15,
            acquire_time=micro_time(our_wall_clock),
            renew_time=micro_time(our_wall_clock),
            transitions=5,
        )

    run_virtual(scenario())


def test_a_follower_takes_over_one_lease_after_the_holder_stops_renewing():
    async def scenario():
        backend = FakeLeaseBackend()
        leader = LeaderElector(backend.client("a"), TIMING, "a")
        follower = LeaderElector(backend.client("b"), TIMING, "b")
        await leader.acquire()
        stop = StopRecorder()
        keeper = asyncio.create_task(leader.keep(stop))
        await asyncio.sleep(0.5)
        following = asyncio.create_task(follower.acquire())
        await asyncio.sleep(60)  # four leases: renewals keep the follower waiting
        assert not following.done()
        keeper.cancel()  # the leader's process is gone: no release
        await asyncio.gather(keeper, return_exceptions=True)
        await following
        last_renewal = backend.write_times("a")[-1]
        assert last_renewal == 60.0
        # It saw that renewal at its next look (every 2 s, from 0.5) and counted from there.
        assert now() == pytest.approx(60.5 + LEASE)
        assert backend.record is not None
        assert (backend.record.spec.holder, backend.record.spec.transitions) == ("b", 1)
        assert stop.calls == []
        # Renewals cost one write each, no reads: the leader writes on what it wrote.
        assert len(backend.write_times("a")) == 1 + 60 // 2

    run_virtual(scenario())


def test_two_followers_racing_for_an_expired_lease_one_wins_the_other_keeps_waiting():
    async def scenario():
        backend = FakeLeaseBackend()
        backend.put(LeaseSpec(holder="gone", duration_seconds=15))
        b = LeaderElector(backend.client("b"), TIMING, "b")
        c = LeaderElector(backend.client("c"), TIMING, "c")
        racers = {asyncio.create_task(b.acquire()): b, asyncio.create_task(c.acquire()): c}
        done, pending = await asyncio.wait(racers, return_when=asyncio.FIRST_COMPLETED)
        assert now() == pytest.approx(LEASE)
        assert backend.conflicts == 1  # both wrote on the same resourceVersion
        (won,), (losing,) = done, pending
        winner = racers[won]
        assert backend.record is not None and backend.record.spec.holder == winner.identity
        keeper = asyncio.create_task(winner.keep(StopRecorder()))
        await asyncio.sleep(45)
        assert not losing.done()  # no error, no second leader: it waits
        assert backend.record.spec.holder == winner.identity
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await losing
        assert backend.record.spec.holder == racers[losing].identity

    run_virtual(scenario())


def test_a_leader_that_sees_another_holder_stops_at_once():
    async def scenario():
        backend = FakeLeaseBackend()
        leader = LeaderElector(backend.client("a"), TIMING, "a")
        await leader.acquire()
        stop = StopRecorder()
        keeper = asyncio.create_task(leader.keep(stop))
        await asyncio.sleep(5)
        backend.put(LeaseSpec(holder="intruder", duration_seconds=15))
        with pytest.raises(LostLeadership, match="replica intruder holds the Lease"):
            await keeper
        # The renewal at 6 conflicts; the one at 8 reads the Lease and sees the intruder.
        assert stop.calls == [8.0]

    run_virtual(scenario())


def test_failed_renewals_are_retried_within_the_deadline():
    async def scenario():
        backend = FakeLeaseBackend()
        client = backend.client("a")
        leader = LeaderElector(client, TIMING, "a")
        await leader.acquire()
        stop = StopRecorder()
        keeper = asyncio.create_task(leader.keep(stop))
        await asyncio.sleep(5)
        client.fault = Fault.ERROR  # renewals at 6, 8 and 10 fail; 12 is within 4 + 10
        await asyncio.sleep(6)
        client.fault = Fault.NONE
        await asyncio.sleep(30)
        assert not keeper.done()
        assert stop.calls == []
        assert client.answered_writes == [0.0, 2.0, 4.0, *range(12, 41, 2)]
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)

    run_virtual(scenario())


def test_a_clean_release_hands_over_without_waiting_for_expiry():
    async def scenario():
        backend = FakeLeaseBackend()
        leader = LeaderElector(backend.client("a"), TIMING, "a")
        follower = LeaderElector(backend.client("b"), TIMING, "b")
        await leader.acquire()
        keeper = asyncio.create_task(leader.keep(StopRecorder()))
        following = asyncio.create_task(follower.acquire())
        await asyncio.sleep(9)
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await leader.release()
        released = now()
        assert backend.record is not None and backend.record.spec.holder is None
        await following
        assert now() - released <= RETRY
        assert (backend.record.spec.holder, backend.record.spec.transitions) == ("b", 1)

    run_virtual(scenario())


def test_a_lease_that_does_not_exist_is_created():
    async def scenario():
        backend = FakeLeaseBackend()
        await LeaderElector(backend.client("a"), TIMING, "a").acquire()
        assert now() == 0.0
        assert backend.record is not None
        assert (backend.record.spec.holder, backend.record.spec.duration_seconds) == ("a", 15)

    run_virtual(scenario())


def test_acting_stops_at_the_deadline_even_between_two_tries():
    # A retry period that does not divide the deadline: tries at 9, 12, 15 fail, the
    # next would be at 18, but the deadline (6 + 10) is 16.
    timing = ElectionTiming(lease_seconds=15, renew_deadline_seconds=10, retry_seconds=3)

    async def scenario():
        backend = FakeLeaseBackend()
        client = backend.client("a")
        leader = LeaderElector(client, timing, "a")
        await leader.acquire()
        stop = StopRecorder()
        keeper = asyncio.create_task(leader.keep(stop))
        await asyncio.sleep(7)
        client.fault = Fault.ERROR
        with pytest.raises(LostLeadership):
            await keeper
        assert client.answered_writes[-1] == 6.0
        assert stop.calls == [16.0]

    run_virtual(scenario())


def test_after_a_stalled_loop_acting_stops_before_any_waiting_coroutine_resumes():
    async def scenario():
        backend = FakeLeaseBackend()
        leader = LeaderElector(backend.client("a"), TIMING, "a")
        await leader.acquire()
        stop = StopRecorder()
        keeper = asyncio.create_task(leader.keep(stop))
        await asyncio.sleep(5)
        stopped_when_resumed: list[list[float]] = []

        async def waiting_handler() -> None:  # e.g. a claim long-poll about to hand out a job
            await asyncio.sleep(0.5)
            stopped_when_resumed.append(list(stop.calls))

        handler = asyncio.create_task(waiting_handler())
        await asyncio.sleep(0)
        asyncio.get_running_loop().now += 30  # something blocked the loop for 30 s
        await handler
        assert stopped_when_resumed == [[35.0]]
        with pytest.raises(LostLeadership):
            await keeper

    run_virtual(scenario())
