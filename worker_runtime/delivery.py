"""Delivering outcomes: each attempt's one report, until an answer settles it.

The rules (docs/worker-protocol.md, "Outcomes"):

* An attempt's report (``complete``, ``fail`` or ``release``) is re-sent with
  exponential backoff (0.5 s doubling to 15 s, with jitter, at least ``Retry-After``)
  for up to ``SHIFTBOSS_OUTCOME_RETRY_SECONDS``, and the attempt stays in every
  heartbeat meanwhile (``pending_ids``), so its lease outlives an operator outage.
* Only an answer that settles the report ends this: 2xx (accepted), 409 (not current:
  someone else decided), 404 ``unknown_attempt``, 413 (the operator failed the attempt
  itself).  404 ``worker_not_registered`` means the operator restarted: register
  again, then re-send.  Any other 4xx is logged and the report dropped.
* When a heartbeat is answered again after failures, waiting reports are re-sent at
  once instead of at the end of their backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .backoff import Backoff
from .client import OperatorClient, Outcome
from .errors import AttemptNotCurrent, ConfigError, OperatorUnavailable, ProtocolError
from .logs import log_ids
from .metrics import WorkerMetrics
from .protocol import CompleteReport, FailReport
from .timings import Timings

log = logging.getLogger(__name__)

#: The ErrorDetail code of a 404 meaning "register again" (the operator restarted).
WORKER_NOT_REGISTERED = "worker_not_registered"
#: Register again; True when it worked.  Given the monotonic time the refused request
#: was sent, so that a registration that happened since is not repeated.
Reregister = Callable[[float], Awaitable[bool]]


@dataclass(eq=False)
class _Report:
    attempt_id: str
    outcome: Outcome
    skill: str
    task: asyncio.Task[None] | None = None


class OutcomeDelivery:
    def __init__(
        self,
        client: OperatorClient,
        *,
        budget_seconds: float,
        timings: Timings,
        reregister: Reregister,
        metrics: WorkerMetrics,
    ) -> None:
        self._client = client
        self._budget = budget_seconds
        self._timings = timings
        self._reregister = reregister
        self._metrics = metrics
        self._pending: dict[str, _Report] = {}
        self._wake = asyncio.Event()

    @property
    def pending_ids(self) -> list[str]:
        """Attempts whose report has not been settled yet, oldest first."""
        return list(self._pending)

    def submit(self, attempt_id: str, outcome: Outcome, skill: str) -> None:
        if attempt_id in self._pending:
            log.error(
                "attempt %s already has a report on its way: %s not sent", attempt_id, outcome
            )
            return
        report = _Report(attempt_id, outcome, skill)
        self._pending[attempt_id] = report
        self._metrics.outcomes_pending.inc()
        report.task = asyncio.create_task(self._deliver(report), name=f"report-{attempt_id}")

    def drop(self, attempt_id: str, reason: str) -> None:
        """Stop delivering (the operator said ``abandon``: it has decided already)."""
        report = self._pending.get(attempt_id)
        if report is not None and report.task is not None:
            log.info("report of attempt %s dropped: %s", attempt_id, reason)
            report.task.cancel()

    def operator_back(self) -> None:
        """The operator answers again: re-send waiting reports now."""
        self._wake.set()
        self._wake = asyncio.Event()

    async def wait_all(self, timeout: float) -> bool:
        """Wait until every report is settled (or given up); False on timeout."""
        tasks = [r.task for r in self._pending.values() if r.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
        return not self._pending

    async def aclose(self) -> None:
        tasks = [r.task for r in self._pending.values() if r.task is not None]
        if tasks:
            log.error(
                "exiting with %d undelivered report(s): %s",
                len(tasks),
                ", ".join(self._pending),
            )
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _deliver(self, report: _Report) -> None:
        try:
            with log_ids(attempt_id=report.attempt_id):
                await self._deliver_until_settled(report)
        finally:
            self._pending.pop(report.attempt_id, None)
            self._metrics.outcomes_pending.dec()

    async def _deliver_until_settled(self, report: _Report) -> None:
        kind = _kind(report.outcome)
        give_up_at = time.monotonic() + self._budget
        backoff = Backoff(self._timings.retry_initial_seconds, self._timings.retry_max_seconds)
        tries = 0
        reregistered = False
        while True:
            tries += 1
            sent = time.monotonic()
            problem: Exception
            retry_after: float | None = None
            try:
                await self._client.report(report.attempt_id, report.outcome)
            except AttemptNotCurrent as exc:
                self._settled_elsewhere(report, f"409 {exc.message}")
                return
            except ProtocolError as exc:
                if exc.code == WORKER_NOT_REGISTERED:
                    if not reregistered and await self._reregister(sent):
                        reregistered = True
                        continue  # the lease may still be ours: re-send at once
                elif exc.status in (404, 413):
                    self._settled_elsewhere(report, f"{exc.status} {exc.message}")
                    return
                else:
                    log.error("the operator refused the %s report: %s; dropped", kind, exc)
                    return
                problem = exc
            except OperatorUnavailable as exc:
                problem, retry_after = exc, exc.retry_after
            except ConfigError as exc:  # the token file, e.g. mid-rotation
                problem = exc
            except Exception as exc:  # a bug must not lose the outcome: keep trying
                log.exception("sending the %s report failed unexpectedly", kind)
                problem = exc
            else:
                log.info("%s report delivered (try %d)", kind, tries)
                return
            reregistered = False
            delay = backoff.next(at_least=retry_after)
            if time.monotonic() + delay > give_up_at:
                log.error(
                    "giving up delivering the %s report after %d tries over %gs "
                    "(SHIFTBOSS_OUTCOME_RETRY_SECONDS): %s",
                    kind,
                    tries,
                    self._budget,
                    problem,
                )
                return
            level = logging.WARNING if tries == 1 else logging.DEBUG
            log.log(level, "%s report not delivered: %s; re-sending in %.1fs", kind, problem, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _settled_elsewhere(self, report: _Report, answer: str) -> None:
        log.info("the operator has decided this attempt already (%s): report dropped", answer)
        self._metrics.dropped.labels(report.skill).inc()


def _kind(outcome: Outcome) -> str:
    if isinstance(outcome, CompleteReport):
        return "complete"
    return "fail" if isinstance(outcome, FailReport) else "release"
