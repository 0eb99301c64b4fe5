"""The dispatcher's settings: every field says its unit and why its default was chosen."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DispatchSettings:
    #: A running attempt's lease lasts this long after each heartbeat (seconds).
    lease_seconds: float = 15.0
    #: How often workers heartbeat (seconds): the operator fences a stopping attempt no
    #: sooner than one heartbeat after it decided, so the worker hears of it first.
    heartbeat_seconds: float = 5.0
    #: Restored attempts (after a restart or a hand-over) keep their lease this long, so
    #: that their workers can reconnect before any can expire.  None: twice the lease.
    restore_grace_seconds: float | None = None
    #: A cancelled or timed-out skill gets this long to stop before it is cancelled.
    cancel_grace_seconds: float = 5.0
    #: A job still waiting this long after it was seen is checked for a reason it cannot
    #: be dispatched (no pool, paused, no worker offers its skill); only then is Queued
    #: written, with that reason.  A job that merely waits its turn costs no write.
    blocked_check_seconds: float = 2.0
    #: Those Queued writes share a budget (per second, and a burst), so that thousands of
    #: blocked jobs never become a burst of writes.
    queued_writes_per_second: float = 20.0
    queued_writes_burst: int = 50
    #: At most this many timer-driven writes (lease ends, deadlines, cancellations, TTL
    #: deletions) in flight at once; the rest wait a tick, claims and reports go first.
    timer_writes_in_flight: int = 32
    #: How often leases, timeouts, retries and TTLs are checked (seconds).
    tick_seconds: float = 0.25
    #: A tick this much later than planned means the event loop stalled (or the process was
    #: stopped): every lease is extended by the stall, since no heartbeat could be heard.
    stall_threshold_seconds: float = 1.0
    #: Every tracked job's timers are re-derived from its status this often (seconds), so
    #: nothing depends on one in-memory entry surviving.
    resync_seconds: float = 30.0
    #: A failed timer-driven write is retried after this long, doubling up to the maximum.
    write_retry_initial_seconds: float = 1.0
    write_retry_max_seconds: float = 30.0
    #: At most one progress write per job per this many seconds.
    progress_write_interval_seconds: float = 5.0
    #: A lease a heartbeat does not list is re-sent to its worker (``assign``) once it is
    #: this old: younger ones are most likely in a claim answer still on its way.
    assign_after_seconds: float = 2.0
    #: Aging: a job counts as one priority level higher for every this many seconds it is
    #: older than another (docs/scheduling.md).  60 s: a priority-0 job waits at most
    #: 10 minutes (plus the backlog already ahead of it) behind a stream of priority 10.
    aging_seconds_per_level: float = 60.0

    @property
    def restore_grace(self) -> float:
        return self.restore_grace_seconds or 2 * self.lease_seconds

    @property
    def fence_allowance(self) -> float:
        """From deciding to stop an attempt to fencing it: the worker hears of it at its
        next heartbeat, gets the grace, and needs a moment to report."""
        return self.heartbeat_seconds + self.cancel_grace_seconds + 2.0
