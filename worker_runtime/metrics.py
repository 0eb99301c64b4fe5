"""Prometheus metrics of one worker, in a registry of their own.

A dedicated registry (not the global one) keeps ``/metrics`` to the worker's own
series and lets several workers live in one process, as tests do.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.started = Counter(
            "shiftboss_worker_attempts_started_total",
            "Attempts this worker started, by skill.",
            ["skill"],
            registry=self.registry,
        )
        self.succeeded = Counter(
            "shiftboss_worker_attempts_succeeded_total",
            "Attempts that returned a result, by skill.",
            ["skill"],
            registry=self.registry,
        )
        self.failed = Counter(
            "shiftboss_worker_attempts_failed_total",
            "Attempts that ended in an error (including cancellation and shutdown), by skill.",
            ["skill"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "shiftboss_worker_attempts_dropped_total",
            "Reports dropped because the operator had decided the attempt already, by skill.",
            ["skill"],
            registry=self.registry,
        )
        self.released = Counter(
            "shiftboss_worker_attempts_released_total",
            "Attempts given back without an outcome (no free slot, or shutting down), by skill.",
            ["skill"],
            registry=self.registry,
        )
        self.running = Gauge(
            "shiftboss_worker_attempts_running",
            "Skills running now: the slots taken (a stopped skill holds its slot until it returns).",
            registry=self.registry,
        )
        self.outcomes_pending = Gauge(
            "shiftboss_worker_outcomes_pending",
            "Outcomes (complete, fail, release) not yet settled by the operator.",
            registry=self.registry,
        )
        self.duration = Histogram(
            "shiftboss_worker_attempt_duration_seconds",
            "Time from the start of an attempt to its outcome, by skill.",
            ["skill"],
            buckets=_DURATION_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
