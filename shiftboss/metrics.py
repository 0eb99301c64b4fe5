"""The operator's Prometheus metrics (served on ``/metrics``)."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)


class BoundedLabel:
    """Values of a label that workers choose, kept to a bounded set.

    Every distinct label value is a time series kept for the operator's lifetime, so a
    worker could otherwise grow its memory (and Prometheus's) without end.  The first
    ``max_values`` distinct values are kept as they come (sanitised: at most
    ``max_length`` characters of ``[A-Za-z0-9_.:-]``, others replaced by ``_``); every
    later one is counted as ``other``.
    """

    OTHER = "other"
    _UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")

    def __init__(self, *, max_values: int = 100, max_length: int = 64) -> None:
        self.max_values, self.max_length = max_values, max_length
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        clean = self._UNSAFE.sub("_", value[: self.max_length]) or "unknown"
        if clean in self._seen:
            return clean
        if len(self._seen) >= self.max_values:
            return self.OTHER
        self._seen.add(clean)
        return clean


#: ``error_type`` of ``ATTEMPTS_FAILED``, as a worker reported it.
error_type_label = BoundedLabel()

JOBS_CLAIMED = Counter(
    "shiftboss_jobs_claimed_total",
    "Job attempts handed to workers.",
    ["namespace", "pool"],
    registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "shiftboss_jobs_finished_total",
    "Jobs that reached a terminal phase.",
    ["namespace", "pool", "phase"],
    registry=REGISTRY,
)
ATTEMPTS_FAILED = Counter(
    "shiftboss_attempts_failed_total",
    "Attempts that ended without success.",
    ["namespace", "pool", "error_type"],
    registry=REGISTRY,
)
STATUS_WRITES = Counter(
    "shiftboss_status_writes_total", "Status writes to the API server.", ["kind"], registry=REGISTRY
)
WRITE_CONFLICTS = Counter(
    "shiftboss_status_conflicts_total",
    "Status writes refused because the object changed (409).",
    registry=REGISTRY,
)
QUEUED_JOBS = Gauge(
    "shiftboss_queued_jobs", "Jobs waiting for a worker.", ["namespace", "pool"], registry=REGISTRY
)
RUNNING_ATTEMPTS = Gauge(
    "shiftboss_running_attempts", "Attempts holding a lease.", registry=REGISTRY
)
CLAIM_LATENCY = Histogram(
    "shiftboss_job_queue_seconds",
    "Time from a job's creation to its first claim.",
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
TIMER_WRITE_FAILURES = Counter(
    "shiftboss_timer_write_failures_total",
    "Time-driven writes (lease expiry, timeout, retry, Queued, TTL) that failed and will be "
    "tried again.",
    registry=REGISTRY,
)
