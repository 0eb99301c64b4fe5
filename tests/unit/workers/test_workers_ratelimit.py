"""Token buckets per key (``shiftboss.workers.ratelimit``), with time moved by hand."""

from __future__ import annotations

import pytest
from auth_fakes import FakeClock

from shiftboss.workers.ratelimit import RateLimiter
from shiftboss.workers.ttlcache import TtlCache


def limiter(clock: FakeClock, *, burst: int = 3, per_second: float = 2.0, max_keys: int = 100):
    return RateLimiter(burst=burst, per_second=per_second, max_keys=max_keys, clock=clock.monotonic)


def test_a_burst_then_the_refill_rate_and_the_wait_until_the_next_token():
    clock = FakeClock()
    bucket = limiter(clock)

    assert [bucket.try_acquire("a") for _ in range(3)] == [None, None, None]
    assert bucket.try_acquire("a") == pytest.approx(0.5)
    clock.advance(0.25)
    assert bucket.try_acquire("a") == pytest.approx(0.25)
    clock.advance(0.25)
    assert bucket.try_acquire("a") is None
    assert bucket.try_acquire("a") == pytest.approx(0.5)


def test_keys_have_their_own_buckets():
    bucket = limiter(FakeClock())
    for _ in range(3):
        bucket.try_acquire("a")

    assert bucket.try_acquire("a") is not None
    assert bucket.try_acquire("b") is None


def test_refund_gives_a_token_back_but_never_beyond_the_burst():
    bucket = limiter(FakeClock())
    for _ in range(3):
        bucket.try_acquire("a")
    bucket.refund("a")
    assert bucket.try_acquire("a") is None
    assert bucket.try_acquire("a") is not None

    bucket.refund("b")  # never seen: nothing to give back
    for _ in range(5):
        bucket.refund("a")
    assert [bucket.try_acquire("a") for _ in range(4)][-1] is not None


def test_buckets_that_refilled_are_dropped_to_make_room():
    clock = FakeClock()
    bucket = limiter(clock, max_keys=3)
    for key in "abc":
        bucket.try_acquire(key)
    clock.advance(1.5)  # burst / per_second: every bucket is full again

    for key in "def":
        assert bucket.try_acquire(key) is None

    assert len(bucket) == 3


def test_when_every_tracked_key_is_busy_new_keys_share_one_bucket():
    """An attacker with many addresses gets one burst in all, not one per address."""
    clock = FakeClock()
    bucket = limiter(clock, max_keys=10)
    for i in range(10):
        bucket.try_acquire(f"busy-{i}")

    answers = [bucket.try_acquire(f"new-{i}") for i in range(100)]

    assert answers[:3] == [None, None, None]
    assert all(wait is not None for wait in answers[3:])
    assert len(bucket) <= 10


@pytest.mark.parametrize(
    ("burst", "per_second", "max_keys"), [(0, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0)]
)
def test_settings_that_could_never_let_anything_through_are_refused(burst, per_second, max_keys):
    with pytest.raises(ValueError, match="RateLimiter needs burst >= 1"):
        RateLimiter(burst=burst, per_second=per_second, max_keys=max_keys)


def test_ttl_cache_entries_expire_and_the_oldest_go_past_the_bound():
    cache: TtlCache[str] = TtlCache(max_entries=2)
    cache.put("a", "A", expires=10)
    cache.put("b", "B", expires=20)
    cache.put("c", "C", expires=30)

    assert (cache.get("a", now=0), cache.get("b", now=0), cache.get("c", now=0)) == (None, "B", "C")
    assert cache.get("b", now=20) is None
    assert len(cache) == 1
    assert cache.drop_where(lambda value: value == "C") == 1
    assert len(cache) == 0
