"""The worker loop: register, then claim, run, heartbeat and deliver until drained.

One ``Runner`` serves one ``Worker`` with one ``WorkerConfig`` until it has drained
(SIGTERM, or ``drain()``).  Each part keeps one set of the rules written down in
``docs/worker-protocol.md``:

* ``claims.py``: claiming only for really free slots, with claim request ids;
* ``attempt.py``: running one attempt, stopping it with grace, its own deadline;
* ``delivery.py``: delivering each outcome until an answer settles it;
* ``heartbeat.py`` and ``lease.py``: heartbeats, their commands, the worker's own view
  of its leases;
* ``slots.py``: the attempts held, the slots, the attempt ids already started.

This module keeps the rest: registration (and registering again when the operator has
forgotten the worker), taking up assignments (from a claim or an ``assign`` command:
each attempt id at most once; released when there is no free slot or the worker is
draining), the commands, and the drain: stop claiming, let running attempts finish
within the drain timeout, then stop the rest (``ctx.cancelled``, a short grace,
cancellation) and release them, deliver what is left for up to
``shutdown_report_seconds``, and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from .attempt import Attempt, Stop, fail_report
from .backoff import Backoff
from .claims import Claims
from .client import OperatorClient
from .context import Context
from .delivery import OutcomeDelivery
from .errors import (
    AttemptNotCurrent,
    CertificateUntrusted,
    ConfigError,
    OperatorError,
    OperatorUnavailable,
)
from .heartbeat import Heartbeats
from .lease import LeaseClock
from .logs import log_ids
from .metrics import WorkerMetrics
from .protocol import (
    Assignment,
    Command,
    CommandType,
    CompleteReport,
    ProgressReport,
    RegisterRequest,
    ReleaseReport,
)
from .slots import AttemptTable
from .timings import Session, Timings
from .version import __version__

if TYPE_CHECKING:
    from .config import WorkerConfig
    from .worker import Worker

log = logging.getLogger(__name__)


class Runner:
    """Runs until drained; ``run()`` returns normally then (the process exits 0).

    ``drain()`` is what SIGTERM/SIGINT call; a second call stops waiting for running
    attempts and releases them at once.  ``timings`` scales the runtime's own waits
    (tests shorten them).
    """

    def __init__(
        self,
        worker: Worker,
        config: WorkerConfig,
        client: OperatorClient,
        *,
        metrics: WorkerMetrics | None = None,
        timings: Timings | None = None,
    ) -> None:
        self.worker = worker
        self.config = config
        self.client = client
        self.metrics = metrics or WorkerMetrics()
        self.timings = timings or Timings()
        self.session = Session()
        self.registered = False
        self.draining = False
        self.clock = LeaseClock()
        self.table = AttemptTable(config.concurrency)
        self.delivery = OutcomeDelivery(
            client,
            budget_seconds=config.outcome_retry_seconds,
            timings=self.timings,
            reregister=self._reregister,
            metrics=self.metrics,
        )
        self.heartbeats = Heartbeats(
            client=client,
            worker_id=config.worker_id,
            session=self.session,
            timings=self.timings,
            table=self.table,
            delivery=self.delivery,
            clock=self.clock,
            obey=self._obey,
            reregister=self._reregister,
            draining=lambda: self.draining,
        )
        self._drain_requested = asyncio.Event()
        self._force = asyncio.Event()
        self.claims = Claims(
            client=client,
            config=config,
            timings=self.timings,
            table=self.table,
            clock=self.clock,
            start=lambda assignment, sent_at: self._take_up(assignment, sent_at, "claim"),
            reregister=self._reregister,
            drain_requested=self._drain_requested,
        )
        self._attempt_tasks: set[asyncio.Task[None]] = set()
        self._register_lock = asyncio.Lock()
        self._registered_at = float("-inf")
        self._started = False

    # -- state seen by the health server and tests -------------------------------

    @property
    def ready(self) -> bool:
        return self.registered and not self.draining

    @property
    def running_attempt_ids(self) -> list[str]:
        """Attempts running or stopping (no outcome yet, not abandoned)."""
        return [a.id for a in self.table.running()]

    # -- lifecycle ------------------------------------------------------------------

    def drain(self, reason: str = "signal") -> None:
        """Begin draining; called again while draining, stop waiting and release."""
        if self.draining:
            log.warning("asked again to stop (%s): releasing running attempts now", reason)
            self._force.set()
            return
        log.info(
            "draining (%s): no new claims; %d attempt(s) running, waiting up to %gs",
            reason,
            len(self.table.running()),
            self.config.drain_timeout_seconds,
        )
        self.draining = True
        self._drain_requested.set()
        self.heartbeats.wake()  # tell the operator now, not at the next beat

    async def run(self) -> None:
        if self._started:
            raise RuntimeError("a Runner runs once; create a new one (Worker.serve does)")
        self._started = True
        with log_ids(worker_id=self.config.worker_id):  # inherited by every task started here
            await self._run()

    async def _run(self) -> None:
        heartbeat: asyncio.Task[None] | None = None
        try:
            if not await self._register_until_done():
                return
            heartbeat = asyncio.create_task(self.heartbeats.run(), name="shiftboss-heartbeat")
            await self.claims.run()
            await self._finish()
        finally:
            self.registered = False
            if heartbeat is not None:
                heartbeat.cancel()
            leftovers = [*self._attempt_tasks]
            for task in leftovers:
                task.cancel()
            await self.delivery.aclose()
            tasks = [t for t in (heartbeat, *leftovers) if t is not None]
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("worker stopped")

    # -- registration -----------------------------------------------------------------

    def _register_request(self) -> RegisterRequest:
        return RegisterRequest(
            pool=self.config.pool,
            worker_id=self.config.worker_id,
            skills=self.worker.skills,
            capacity=self.config.concurrency,
            version=(self.worker.version or __version__)[:64],
            runtime="python",
        )

    async def _register_once(self) -> None:
        response = await self.client.register(self._register_request())
        self.session.heartbeat_interval = max(0.05, response.heartbeat_interval_seconds)
        self.session.lease_seconds = response.lease_seconds
        self.session.cancel_grace = response.cancel_grace_seconds
        self._registered_at = time.monotonic()
        self.registered = True

    async def _register_until_done(self) -> bool:
        """Register, retrying while the operator is unreachable; False if drained first.

        Refusals (bad token, unknown pool, invalid skills) and an untrusted certificate
        are not retried: they need a human, and a crash-looping pod with a clear last
        log line gets one.
        """
        backoff = Backoff(self.timings.retry_initial_seconds, self.timings.retry_max_seconds)
        tries = 0
        while not self.draining:
            tries += 1
            try:
                await self._register_once()
            except CertificateUntrusted as exc:
                raise ConfigError(self.config.untrusted_certificate(str(exc))) from None
            except OperatorUnavailable as exc:
                delay = backoff.next(at_least=exc.retry_after)
                log.warning(
                    "operator not reachable at %s (try %d): %s; retrying in %.1fs",
                    self.config.operator_url,
                    tries,
                    exc,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drain_requested.wait(), delay)
                continue
            log.info(
                "registered with %s as %s in pool %s: %d skill(s), concurrency %d",
                self.config.operator_url,
                self.config.worker_id,
                self.config.pool,
                len(self.worker.skills),
                self.config.concurrency,
            )
            return True
        return False

    async def _reregister(self, refused_at: float) -> bool:
        """The operator forgot this worker (it restarted): register again, once.

        ``refused_at`` is when the refused request was sent: if a registration ended
        after it, another loop registered again already.  True when registered.
        """
        async with self._register_lock:
            if self._registered_at > refused_at:
                return True
            log.warning("the operator does not know this worker any more: registering again")
            try:
                await self._register_once()
            except (OperatorError, ConfigError) as exc:
                log.warning("registering again failed: %s", exc)
                return False
            return True

    # -- taking up assignments ------------------------------------------------------------

    def _take_up(self, assignment: Assignment, lease_from: float, source: str) -> None:
        """Start an assignment, or release it; each attempt id at most once.

        ``lease_from`` is the lease-clock reading at which the request that brought it
        was sent: its lease runs from then.
        """
        attempt_id = assignment.attempt_id
        if attempt_id in self.table.started:
            log.info("attempt %s (from a %s) was taken up already: ignored", attempt_id, source)
            return
        self.table.started.add(attempt_id)
        if self.draining or self.table.free_slots <= 0:
            why = "is shutting down" if self.draining else "has no free slot"
            self._release(assignment, f"worker {self.config.worker_id} {why}")
            return
        skill = self.worker.get_skill(assignment.skill)
        if skill is None:
            known = ", ".join(sorted(s.name for s in self.worker.skills)) or "none"
            message = f"this worker has no skill {assignment.skill!r} (it has: {known})"
            report = fail_report("UnknownSkill", message, retryable=False)
            self.delivery.submit(attempt_id, report, assignment.skill)
            return
        ctx = Context.for_assignment(assignment, self.config.worker_id)
        attempt = Attempt(
            assignment,
            skill,
            ctx,
            lease_until=lease_from + assignment.lease_seconds,
            cancel_grace=self.session.cancel_grace,
            on_returned=self._returned,
        )
        ctx._send_progress = lambda percent, message: self._send_progress(attempt, percent, message)
        self.table.add(attempt)
        self.metrics.running.inc()
        task = asyncio.create_task(self._run_attempt(attempt), name=f"attempt-{attempt_id}")
        self._attempt_tasks.add(task)
        task.add_done_callback(self._attempt_tasks.discard)

    def _release(self, assignment: Assignment, reason: str) -> None:
        log.warning("releasing attempt %s: %s", assignment.attempt_id, reason)
        self.metrics.released.labels(assignment.skill).inc()
        self.delivery.submit(assignment.attempt_id, ReleaseReport(reason=reason), assignment.skill)

    def _returned(self, attempt: Attempt) -> None:
        self.metrics.running.dec()
        self.table.settle(attempt)

    async def _run_attempt(self, attempt: Attempt) -> None:
        a = attempt.assignment
        started = time.monotonic()
        self.metrics.started.labels(a.skill).inc()
        with log_ids(job=f"{a.job.namespace}/{a.job.name}", attempt_id=a.attempt_id):
            log.info("attempt %d of %s: running skill %s", a.attempt, a.job.name, a.skill)
            try:
                outcome = await attempt.run()
            finally:
                self.table.settle(attempt)
            if outcome is None:
                log.info("attempt abandoned: nothing reported")
                return
            if isinstance(outcome, CompleteReport):
                self.metrics.succeeded.labels(a.skill).inc()
            elif isinstance(outcome, ReleaseReport):
                self.metrics.released.labels(a.skill).inc()
            else:
                self.metrics.failed.labels(a.skill).inc()
            self.metrics.duration.labels(a.skill).observe(time.monotonic() - started)
            self.delivery.submit(attempt.id, outcome, a.skill)

    async def _send_progress(self, attempt: Attempt, percent: float, message: str) -> None:
        if not attempt.running:
            return
        try:
            await self.client.progress(attempt.id, ProgressReport(percent=percent, message=message))
        except AttemptNotCurrent as exc:
            attempt.abandon(f"the operator says it is no longer current ({exc.message})")
        except (OperatorError, ConfigError) as exc:
            log.debug("progress not delivered: %s", exc)

    # -- commands ---------------------------------------------------------------------------

    def _obey(self, command: Command, sent_at: float) -> None:
        if command.type == CommandType.assign:
            if command.assignment is None:
                log.warning("an assign command without an assignment: ignored")
            else:
                self._take_up(command.assignment, sent_at, "heartbeat's assign")
            return
        attempt_id = command.attempt_id or ""
        attempt = self.table.get(attempt_id)
        if command.type == CommandType.abandon:
            reason = command.reason or "abandoned by the operator"
            if attempt is not None:
                attempt.abandon(reason)
            self.delivery.drop(attempt_id, reason)
        elif command.type == CommandType.cancel:
            if attempt is None or not attempt.running:
                log.debug("cancel for %s, which is not running here: ignored", attempt_id)
                return
            grace = command.grace_seconds
            attempt.stop(
                Stop.cancelled(command.reason),
                self.session.cancel_grace if grace is None else grace,
            )

    # -- draining ----------------------------------------------------------------------------

    async def _finish(self) -> None:
        """Wait for running attempts up to the drain timeout, release the rest, deliver."""
        running = [*self._attempt_tasks]
        if running and not self._force.is_set():
            finished = asyncio.ensure_future(asyncio.wait(running))
            forced = asyncio.ensure_future(self._force.wait())
            timeout = self.config.drain_timeout_seconds
            await asyncio.wait([finished, forced], timeout=timeout, return_when="FIRST_COMPLETED")
            finished.cancel()
            forced.cancel()
        leftovers = self.table.running()
        if leftovers:
            log.warning("drain timeout: releasing %d running attempt(s)", len(leftovers))
        grace = 0.0 if self._force.is_set() else self.timings.release_grace_seconds
        for attempt in leftovers:
            attempt.stop(Stop.shutdown(self.config.worker_id), grace)
        deadline = time.monotonic() + self.timings.shutdown_report_seconds
        stopping = [*self._attempt_tasks]
        if stopping:
            await asyncio.wait(stopping, timeout=self.timings.shutdown_report_seconds)
        if not await self.delivery.wait_all(max(0.0, deadline - time.monotonic())):
            log.error("shutdown: some reports could not be delivered in time")
