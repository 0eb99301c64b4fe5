"""Unit-test skills without a cluster: run one in-process, the way a worker would.

::

    from worker_runtime.testing import SkillEnvironment

    env = SkillEnvironment(worker)
    outcome = await env.run("resize", {"url": "https://x/a.png", "width": 64})
    assert outcome.succeeded, outcome
    assert outcome.progress == [(50.0, "downloading")]

``run`` goes through the runtime's own attempt (``worker_runtime.attempt``), so a skill
behaves as on a worker: its params are validated by its type (a refusal is the
``InvalidParams`` failure the operator records), a sync skill runs in a thread, errors
map to the same reports (``FatalError`` not retried, ``RetryableError(after=…)``, any
other exception retried), a result must serialise as its declared type and fit the
inline cap, and a cancelled or timed-out skill gets ``ctx.cancelled`` and a grace before
an async one is cancelled.  Only the operator is missing: progress is recorded instead
of sent, and the log records of the attempt are kept.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from .attempt import Attempt, Stop
from .client import Outcome
from .context import Context
from .logs import IdsFilter, log_ids
from .protocol import Assignment, CompleteReport, FailReport, JobRef
from .timings import Session
from .worker import Worker

_attempt_ids = itertools.count(1)


class Status(StrEnum):
    """How the attempt ended, as the operator would record it."""

    succeeded = "Succeeded"
    #: A deadline that passed is a failure too: ``error.error_type == "TimedOut"``.
    failed = "Failed"
    cancelled = "Cancelled"


class Progress(NamedTuple):
    percent: float
    message: str


@dataclass(frozen=True)
class SkillOutcome:
    """What one run reported; ``assert outcome.succeeded, outcome`` shows the error."""

    status: Status
    #: The result as the operator stores it (JSON data), when succeeded.
    result: Any = None
    #: The failure as the worker reports it (type, message, retryable, retry after).
    error: FailReport | None = None
    #: Every ``ctx.progress``/``progress_sync`` report, in order, clamped as sent.
    progress: list[Progress] = field(default_factory=list)
    #: The log records of the attempt, carrying ``worker_id``, ``job`` and ``attempt_id``.
    logs: list[logging.LogRecord] = field(default_factory=list, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.status == Status.succeeded

    @property
    def failed(self) -> bool:
        return self.status == Status.failed

    @property
    def cancelled(self) -> bool:
        return self.status == Status.cancelled

    @property
    def messages(self) -> list[str]:
        """The captured log messages, formatted."""
        return [record.getMessage() for record in self.logs]


class SkillEnvironment:
    """Runs a worker's skills in-process, with a test's control over time and cancellation.

    ``cancel_grace`` is how long a stopped skill may take before an async one is
    cancelled (the operator's default, 5 s, unless given).  ``log_level``: records at
    this level and above are captured (the root logger is lowered to it during a run).
    """

    def __init__(
        self,
        worker: Worker,
        *,
        cancel_grace: float = Session.cancel_grace,
        log_level: int = logging.DEBUG,
        worker_id: str = "test-worker",
    ) -> None:
        self.worker = worker
        self.cancel_grace = cancel_grace
        self.log_level = log_level
        self.worker_id = worker_id
        self._flights: list[_Flight] = []
        self._lock = threading.Lock()

    async def run(
        self,
        skill: str,
        params: dict[str, Any] | None = None,
        *,
        deadline: datetime | float | None = None,
        cancel_after: float | None = None,
        cancel_reason: str = "cancelled by the test",
        job: str = "test-job",
        namespace: str = "default",
        attempt: int = 1,
    ) -> SkillOutcome:
        """Run ``skill`` once with ``params`` (JSON, as in a Job's ``spec.params``).

        ``deadline``: when the attempt must end (a datetime, or seconds from now).
        ``cancel_after``: cancel it that many seconds after it starts, as
        ``spec.cancel: true`` would.  ``job``, ``namespace`` and ``attempt`` are what
        ``ctx`` says about the job.
        """
        found = self.worker.get_skill(skill)
        if found is None:
            known = ", ".join(sorted(s.name for s in self.worker.skills)) or "none"
            raise LookupError(f"the worker has no skill {skill!r} (it has: {known})")
        if isinstance(deadline, int | float):
            deadline = datetime.now(UTC) + timedelta(seconds=deadline)
        number = next(_attempt_ids)
        assignment = Assignment(
            attempt_id=f"{job}-{attempt}-{number}",
            job=JobRef(namespace=namespace, name=job, uid=f"test-uid-{number}"),
            attempt=attempt,
            skill=skill,
            params=params or {},
            deadline=deadline,
            lease_seconds=Session.lease_seconds,
        )
        # The runner's path, minus the operator: the same context, attempt and log ids.
        ctx = Context.for_assignment(assignment, self.worker_id)
        progress: list[Progress] = []

        async def record(percent: float, message: str) -> None:
            progress.append(Progress(percent, message))

        ctx._send_progress = record
        run = Attempt(
            assignment,
            found,
            ctx,
            lease_until=float("inf"),  # no operator, no lease to lose
            cancel_grace=self.cancel_grace,
            on_returned=lambda _: None,
        )
        ids = {"job": f"{namespace}/{job}", "attempt_id": assignment.attempt_id}
        with (
            _capture(assignment.attempt_id, self.log_level) as logs,
            log_ids(worker_id=self.worker_id, **ids),
            self._in_flight(run) as flight,
        ):
            timer = None
            if cancel_after is not None:
                timer = flight.loop.call_later(cancel_after, flight.stop, cancel_reason)
            try:
                report = await run.run()
            finally:
                if timer is not None:
                    timer.cancel()
        return _outcome(run, report, progress, logs)

    def run_sync(
        self, skill: str, params: dict[str, Any] | None = None, **options: Any
    ) -> SkillOutcome:
        """``run`` from a sync test (not from inside a running event loop)."""
        return asyncio.run(self.run(skill, params, **options))

    def cancel(self, reason: str = "cancelled by the test") -> None:
        """Cancel every run in flight, as the operator does (safe from any thread).

        The skill sees ``ctx.cancelled`` and ``ctx.cancel_reason`` at once; an async one
        still running after ``cancel_grace`` is cancelled.
        """
        with self._lock:
            flights = list(self._flights)
        if not flights:
            raise RuntimeError("no run in flight to cancel: start env.run(...) as a task first")
        for flight in flights:
            flight.loop.call_soon_threadsafe(flight.stop, reason, context=flight.scope)

    @contextmanager
    def _in_flight(self, run: Attempt) -> Iterator[_Flight]:
        flight = _Flight(run, self.cancel_grace)
        with self._lock:
            self._flights.append(flight)
        try:
            yield flight
        finally:
            with self._lock:
                self._flights.remove(flight)


class _Flight:
    """A run in flight: stopped on its own loop, in its own context (its log ids)."""

    def __init__(self, attempt: Attempt, grace: float) -> None:
        self.attempt = attempt
        self.grace = grace
        self.loop = asyncio.get_running_loop()
        self.scope = contextvars.copy_context()

    def stop(self, reason: str) -> None:
        self.attempt.stop(Stop.cancelled(reason), self.grace)


def _outcome(
    run: Attempt,
    report: Outcome | None,
    progress: list[Progress],
    logs: list[logging.LogRecord],
) -> SkillOutcome:
    if isinstance(report, CompleteReport):
        return SkillOutcome(Status.succeeded, report.result, None, progress, logs)
    if not isinstance(report, FailReport):  # a release or nothing: only when draining
        raise AssertionError(f"unexpected report outside a worker: {report!r}")
    stop = run.stop_cause
    cancelled = stop is not None and report is stop.outcome and report.error_type == "Cancelled"
    return SkillOutcome(
        Status.cancelled if cancelled else Status.failed, None, report, progress, logs
    )


class _Capture(logging.Handler):
    """One handler on the root logger for every run in flight, sorting records by attempt."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.addFilter(IdsFilter())  # ids from the context, as the worker's own handler
        #: Per attempt in flight: the lowest level it keeps, and the records kept.
        self.runs: dict[str, tuple[int, list[logging.LogRecord]]] = {}
        self.saved_level = logging.NOTSET

    def emit(self, record: logging.LogRecord) -> None:
        run = self.runs.get(getattr(record, "attempt_id", None) or "")
        # The run's own level decides: loggers may let lower records through (a level
        # set by other code, or the root lowered for another run in flight).
        if run is not None and record.levelno >= run[0]:
            run[1].append(record)


_capturer = _Capture()
_capture_lock = threading.Lock()


@contextmanager
def _capture(attempt_id: str, level: int) -> Iterator[list[logging.LogRecord]]:
    """Keep the records logged for ``attempt_id``; the root logger's level is restored
    once the last run in flight ends."""
    root = logging.getLogger()
    records: list[logging.LogRecord] = []
    with _capture_lock:
        if not _capturer.runs:
            _capturer.saved_level = root.level
            root.addHandler(_capturer)
        _capturer.runs[attempt_id] = (level, records)
        if root.level > level:  # NOTSET (0) lets everything through already
            root.setLevel(level)
    try:
        yield records
    finally:
        with _capture_lock:
            del _capturer.runs[attempt_id]
            if not _capturer.runs:
                root.removeHandler(_capturer)
                root.setLevel(_capturer.saved_level)
