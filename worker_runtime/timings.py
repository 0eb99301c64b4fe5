"""How long the runtime waits for things: the protocol's defaults, scalable for tests.

The operator sets the heartbeat interval, the lease and the cancel grace (in its
registration answer); the outcome budget and the drain timeout come from the worker's
configuration.  The rest is here, with the values ``docs/worker-protocol.md`` names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    #: Retries of registration, claims and outcome reports: 0.5 s doubling to 15 s.
    retry_initial_seconds: float = 0.5
    retry_max_seconds: float = 15.0
    #: A heartbeat gives up after one heartbeat interval, bounded to this range; it is
    #: never retried by itself (the next beat is the retry).
    heartbeat_timeout_min_seconds: float = 1.0
    heartbeat_timeout_max_seconds: float = 10.0
    #: At the end of a drain: how long a running skill may take to stop before it is
    #: cancelled and its attempt released.
    release_grace_seconds: float = 2.0
    #: After a drain: how long to go on delivering outcomes (and releases) before exiting.
    shutdown_report_seconds: float = 10.0
    #: An empty claim answer that came back sooner than this waits out the rest, so an
    #: operator that answers at once cannot turn claiming into a busy loop.
    min_claim_interval_seconds: float = 1.0

    def heartbeat_timeout(self, interval: float) -> float:
        return min(
            max(interval, self.heartbeat_timeout_min_seconds), self.heartbeat_timeout_max_seconds
        )


@dataclass
class Session:
    """What the operator said at the last registration (``RegisterResponse``)."""

    heartbeat_interval: float = 5.0
    lease_seconds: float = 30.0
    cancel_grace: float = 5.0
