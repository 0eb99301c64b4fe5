"""The operator's Prometheus metrics (served on ``/metrics``; listed in docs/metrics.md).

Names follow Prometheus's conventions: base units (seconds), counters end in ``_total``,
and every label has a bounded set of values (namespaces and pools are configuration;
no job name, uid or worker id is ever a label).  Counters and the histogram are updated
where things happen; the gauges that describe the present (queues, leases, workers) are
set by :func:`refresh` when ``/metrics`` is scraped, so no job's path pays for them.
"""

from __future__ import annotations

import re
from collections import Counter as Tally
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from shiftboss.jobs.book import JobBook
    from shiftboss.workers.registry import WorkerRegistry

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
    "Jobs that reached a terminal phase (Succeeded, Failed, Cancelled).",
    ["namespace", "pool", "phase"],
    registry=REGISTRY,
)
ATTEMPTS_FAILED = Counter(
    "shiftboss_attempts_failed_total",
    "Attempts that ended without success, by the error type recorded on the attempt.",
    ["namespace", "pool", "error_type"],
    registry=REGISTRY,
)
STATUS_WRITES = Counter(
    "shiftboss_job_status_writes_total",
    "Job status writes to the API server, by the transition written (or Progress).",
    ["event"],
    registry=REGISTRY,
)
WRITE_CONFLICTS = Counter(
    "shiftboss_job_status_conflicts_total",
    "Job status writes refused because the object changed (409); the job is read again.",
    registry=REGISTRY,
)
TIMER_WRITE_FAILURES = Counter(
    "shiftboss_timer_write_failures_total",
    "Time-driven writes (lease expiry, timeout, retry, Queued, TTL) that failed and will be "
    "tried again.",
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "shiftboss_kube_api_requests_total",
    "Requests to the Kubernetes API server, by HTTP method (WATCH for a watch) and status code.",
    ["method", "code"],
    registry=REGISTRY,
)
QUEUE_DURATION = Histogram(
    "shiftboss_job_queue_duration_seconds",
    "Time from a job's creation to its first claim.",
    ["namespace", "pool"],
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

LEADER = Gauge(
    "shiftboss_leader",
    "1 while this replica serves (it holds the leader Lease, or runs without leader "
    "election), 0 on a standby.",
    registry=REGISTRY,
)

# -- set at scrape time by ``refresh`` ------------------------------------------------------

QUEUED_JOBS = Gauge(
    "shiftboss_queued_jobs",
    "Jobs waiting for a worker: queued, or retrying after a backoff (the pool's queuedJobs).",
    ["namespace", "pool"],
    registry=REGISTRY,
)
OLDEST_QUEUED_AGE = Gauge(
    "shiftboss_queue_oldest_job_age_seconds",
    "Age (since creation) of the oldest job that could run now but waits for a worker; "
    "0 when none waits.",
    ["namespace", "pool"],
    registry=REGISTRY,
)
RUNNING_ATTEMPTS = Gauge(
    "shiftboss_running_attempts",
    "Attempts holding a lease.",
    ["namespace", "pool"],
    registry=REGISTRY,
)
WORKERS = Gauge(
    "shiftboss_workers",
    "Registered workers by state: idle, busy (holds a lease) or draining.",
    ["namespace", "pool", "state"],
    registry=REGISTRY,
)
WORKER_STATES = ("idle", "busy", "draining")


def refresh(book: JobBook, registry: WorkerRegistry, now: float) -> None:
    """Set the scrape-time gauges from the operator's in-memory view (``now``: POSIX
    seconds).  Pools are those the dispatcher has seen (a job, or the pool controller
    asking for counts) since the operator started, and those with registered workers:
    each gets a sample, zero or not, so a pool's panels show 0 rather than no data."""
    states: Tally[tuple[str, str, str]] = Tally()
    for worker in registry:
        busy = bool(book.leases.held_by(worker.key))
        state = "draining" if worker.draining else "busy" if busy else "idle"
        states[(*worker.pool_key, state)] += 1
    pools = set(book.queues) | {(ns, pool) for ns, pool, _ in states}
    for gauge in (QUEUED_JOBS, OLDEST_QUEUED_AGE, RUNNING_ATTEMPTS, WORKERS):
        gauge.clear()  # a pool or worker gone since the last scrape leaves no series behind
    for namespace, pool in pools:
        queue = book.queues.get((namespace, pool))
        oldest = queue.oldest_created() if queue is not None else None
        QUEUED_JOBS.labels(namespace, pool).set(book.queued_count(namespace, pool))
        OLDEST_QUEUED_AGE.labels(namespace, pool).set(
            0.0 if oldest is None else max(now - oldest, 0.0)
        )
        RUNNING_ATTEMPTS.labels(namespace, pool).set(book.running_count(namespace, pool))
        for state in WORKER_STATES:
            WORKERS.labels(namespace, pool, state).set(states[(namespace, pool, state)])
