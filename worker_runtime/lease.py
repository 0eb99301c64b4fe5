"""The worker's own view of its leases ("Leases and heartbeats" in docs/worker-protocol.md).

An attempt's lease is valid until the send time of the last answered heartbeat that
listed it (or of the claim or heartbeat that handed it over) plus ``lease_seconds``.
Leases run on a clock that stops while the operator is known to be *absent*
(connection refused, or 503): nobody can re-dispatch the work then, so there is no
reason to stop it.  While the operator is *unreachable* otherwise (timeouts, resets,
other 5xx, 429: a network partition, for all the worker can tell) the clock runs, and
a lease that lapses means the operator may already have given the work to someone else.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class LeaseClock:
    """Monotonic time minus the time the operator was known to be absent.

    Each observation of the operator (a heartbeat's result) says which it is: absent
    (the clock stops from the first such observation) or present or unreachable
    (it runs again).  Lease expiry times are readings of this clock.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._absent_total = 0.0
        self._absent_since: float | None = None

    def now(self) -> float:
        current = self._clock()
        paused = current - self._absent_since if self._absent_since is not None else 0.0
        return current - self._absent_total - paused

    @property
    def absent(self) -> bool:
        return self._absent_since is not None

    def operator_absent(self) -> None:
        if self._absent_since is None:
            self._absent_since = self._clock()

    def operator_seen(self) -> None:
        """The operator answered, or failed in a way that is not absence: time runs."""
        if self._absent_since is not None:
            self._absent_total += self._clock() - self._absent_since
            self._absent_since = None

    def lapsed(self, valid_until: float) -> bool:
        """Whether a lease valid until ``valid_until`` (a reading of this clock) is gone."""
        return not self.absent and self.now() > valid_until
