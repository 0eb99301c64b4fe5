"""Token buckets keyed by a string (a client address, an identity), in bounded memory."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: When every tracked key is busy, new keys share this one bucket: an attacker with many
#: addresses then gets one burst in all, not one per address.
OVERFLOW_KEY = "\x00overflow"


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``burst`` requests at once per key, then ``per_second`` on average.

    At most ``max_keys`` keys are tracked.  A bucket left alone long enough to refill
    completely is the same as no bucket, so those are dropped first; when none is, a new
    key shares the overflow bucket rather than pushing out a key that is being limited.
    """

    def __init__(
        self,
        *,
        burst: int,
        per_second: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or per_second <= 0 or max_keys < 1:
            raise ValueError(
                f"RateLimiter needs burst >= 1, per_second > 0 and max_keys >= 1 "
                f"(got burst={burst}, per_second={per_second}, max_keys={max_keys})"
            )
        self.burst, self.per_second, self.max_keys = burst, per_second, max_keys
        self._clock = clock
        #: Least recently touched first, so the buckets that refilled are at the front.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def try_acquire(self, key: str) -> float | None:
        """Take a token: None if there was one, else the seconds until there is."""
        now = self._clock()
        bucket = self._bucket(key, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.per_second

    def refund(self, key: str) -> None:
        """Give back a token taken by ``try_acquire`` (the request turned out to be fine)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(self.burst, bucket.tokens + 1)

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets.move_to_end(key)
            return bucket
        refill_seconds = self.burst / self.per_second
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.updated < refill_seconds:
                break
            self._buckets.popitem(last=False)
        if len(self._buckets) >= self.max_keys:
            key = OVERFLOW_KEY
            bucket = self._buckets.get(key)
            if bucket is not None:
                self._buckets.move_to_end(key)
                return bucket
            self._buckets.popitem(last=False)  # room for the overflow bucket itself
        bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), updated=now)
        return bucket
