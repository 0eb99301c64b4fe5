"""The worker loop: register, claim, run, heartbeat, report, drain.

One ``Runner`` serves one ``Worker`` with one ``WorkerConfig`` until it has drained
(SIGTERM, or the operator's ``drain`` command).  The rules it keeps:

* never more than ``concurrency`` attempts at once: claims ask for the free slots;
* an attempt stays in the heartbeat (its lease is renewed) until its outcome has
  been reported, so a slow report never loses a lease;
* 409 on any report means the operator has already decided that attempt: it is
  dropped without another word (fencing makes a second outcome impossible anyway);
* draining stops claiming at once, finishes running attempts within the drain
  timeout, then hands the rest back as retryable ``WorkerShutdown`` failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .client import OperatorClient
from .context import Context
from .errors import (
    AttemptNotCurrent,
    ConfigError,
    FatalError,
    OperatorError,
    OperatorUnavailable,
    ProtocolError,
    RetryableError,
    Unauthorized,
)
from .logs import ContextLogger, log_ids
from .metrics import WorkerMetrics
from .protocol import (
    Assignment,
    ClaimRequest,
    Command,
    CommandType,
    CompleteReport,
    FailReport,
    HeartbeatRequest,
    ProgressReport,
    RegisterRequest,
)
from .skills import Skill, SkillInputError, SkillOutputError
from .version import __version__

if TYPE_CHECKING:
    from .config import WorkerConfig
    from .worker import Worker

log = logging.getLogger(__name__)

Report = CompleteReport | FailReport
#: The ErrorDetail code of a 404 meaning "register again" (the operator restarted).
WORKER_NOT_REGISTERED = "worker_not_registered"


@dataclass(eq=False)
class _Attempt:
    assignment: Assignment
    skill: Skill | None
    ctx: Context
    task: asyncio.Task[None] | None = None
    #: The skill call itself, separate from ``task`` so that cancelling it still
    #: leaves ``task`` free to report the outcome.
    execution: asyncio.Future[object] | None = None
    cancel_requested: bool = False  # the operator's ``cancel`` command
    shutdown: bool = False  # given up at the end of a drain
    abandoned: bool = False  # the operator's ``abandon`` or a 409: report nothing
    grace_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.assignment.attempt_id


class Runner:
    """Runs until drained; ``run()`` returns normally then (the process exits 0).

    ``drain()`` is what SIGTERM/SIGINT call; a second call stops waiting for running
    attempts and hands them back at once.
    """

    def __init__(
        self,
        worker: Worker,
        config: WorkerConfig,
        client: OperatorClient,
        *,
        metrics: WorkerMetrics | None = None,
        cancel_grace_seconds: float = 5.0,
        shutdown_report_seconds: float = 10.0,
        retry_initial_seconds: float = 0.5,
        retry_max_seconds: float = 10.0,
    ) -> None:
        self.worker = worker
        self.config = config
        self.client = client
        self.metrics = metrics or WorkerMetrics()
        self.cancel_grace_seconds = cancel_grace_seconds
        self.shutdown_report_seconds = shutdown_report_seconds
        self.retry_initial_seconds = retry_initial_seconds
        self.retry_max_seconds = retry_max_seconds
        self.registered = False
        self.draining = False
        self.heartbeat_interval = 5.0
        self.lease_seconds = 30.0
        self._attempts: dict[str, _Attempt] = {}
        self._handbacks: set[asyncio.Task[None]] = set()
        self._drain_requested = asyncio.Event()
        self._force = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._wake_heartbeat = asyncio.Event()
        self._register_lock = asyncio.Lock()
        self._registered_at = 0.0
        self._started = False

    # -- state seen by the health server and tests -------------------------------

    @property
    def ready(self) -> bool:
        return self.registered and not self.draining

    @property
    def running_attempt_ids(self) -> list[str]:
        return [a.id for a in self._attempts.values() if not a.abandoned]

    # -- lifecycle ------------------------------------------------------------------

    def drain(self, reason: str = "signal") -> None:
        """Begin draining; called again while draining, stop waiting and hand back."""
        if self.draining:
            log.warning("asked again to stop (%s): handing back running attempts now", reason)
            self._force.set()
            return
        self._begin_drain(reason)

    def _begin_drain(self, reason: str) -> None:
        if self.draining:
            return
        log.info(
            "draining (%s): no new claims; %d attempt(s) running, waiting up to %gs",
            reason,
            len(self._attempts),
            self.config.drain_timeout_seconds,
        )
        self.draining = True
        self._drain_requested.set()
        self._wake_heartbeat.set()  # tell the operator now, not at the next beat

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
            heartbeat = asyncio.create_task(self._heartbeat_loop(), name="shiftboss-heartbeat")
            await self._claim_loop()
            await self._finish()
        finally:
            self.registered = False
            if heartbeat is not None:
                heartbeat.cancel()
            leftovers = [a.task for a in self._attempts.values() if a.task] + [*self._handbacks]
            for task in leftovers:
                task.cancel()
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
        self.heartbeat_interval = max(0.05, response.heartbeat_interval_seconds)
        self.lease_seconds = response.lease_seconds
        self._registered_at = time.monotonic()
        self.registered = True

    async def _register_until_done(self) -> bool:
        """Register, retrying while the operator is unreachable; False if drained first.

        Refusals (bad token, unknown pool, invalid skills) are not retried: they need
        a human, and a crash-looping pod with a clear last log line gets one.
        """
        delay = self.retry_initial_seconds
        tries = 0
        while not self.draining:
            tries += 1
            try:
                await self._register_once()
            except OperatorUnavailable as exc:
                log.warning(
                    "operator not reachable at %s (try %d): %s; retrying in %.1fs",
                    self.config.operator_url,
                    tries,
                    exc,
                    delay,
                )
            else:
                log.info(
                    "registered with %s as %s in pool %s: %d skill(s), concurrency %d",
                    self.config.operator_url,
                    self.config.worker_id,
                    self.config.pool,
                    len(self.worker.skills),
                    self.config.concurrency,
                )
                return True
            await self._wait_any(self._drain_requested, timeout=delay)
            delay = min(delay * 2, self.retry_max_seconds)
        return False

    async def _reregister(self, refused_at: float) -> None:
        """The operator forgot this worker (it restarted): register again, once.

        ``refused_at`` is when the refused request was sent: if a registration ended
        after it, the other loop already registered again.
        """
        async with self._register_lock:
            if self._registered_at > refused_at:
                return
            log.warning("the operator does not know this worker any more: registering again")
            try:
                await self._register_once()
            except (OperatorError, ConfigError) as exc:
                log.warning("registering again failed: %s", exc)

    # -- claiming ---------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        delay = self.retry_initial_seconds
        while not self.draining:
            free = self.config.concurrency - len(self._attempts)
            if free <= 0:
                self._slot_freed.clear()
                await self._wait_any(self._slot_freed, self._drain_requested)
                continue
            request = ClaimRequest(max_attempts=free, wait_seconds=self.config.claim_wait_seconds)
            started = time.monotonic()
            claim = asyncio.create_task(self.client.claim(self.config.worker_id, request))
            await self._wait_any(self._drain_requested, claim)
            if not claim.done():  # draining: give up the long poll
                claim.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await claim
                return
            try:
                response = claim.result()
            except ProtocolError as exc:
                if exc.status == 404:
                    await self._reregister(started)
                    continue
                log.error("the operator refused a claim: %s; retrying in %.1fs", exc, delay)
            except (OperatorError, ConfigError) as exc:
                log.warning("claim failed: %s; retrying in %.1fs", exc, delay)
            except Exception:
                log.exception("claim failed unexpectedly; retrying in %.1fs", delay)
            else:
                delay = self.retry_initial_seconds
                for assignment in response.assignments:
                    self._start(assignment)
                elapsed = time.monotonic() - started
                if not response.assignments and elapsed < 1.0:
                    # An operator that answers at once must not turn this into a busy loop.
                    await self._wait_any(self._drain_requested, timeout=1.0 - elapsed)
                continue
            await self._wait_any(self._drain_requested, timeout=delay)
            delay = min(delay * 2, self.retry_max_seconds)

    def _start(self, assignment: Assignment) -> None:
        if assignment.attempt_id in self._attempts:
            log.warning("attempt %s was assigned twice; ignoring the repeat", assignment.attempt_id)
            return
        if len(self._attempts) >= self.config.concurrency:
            # The operator sent more than max_attempts: hand the extra back, unharmed.
            log.error("assigned more attempts than slots; handing %s back", assignment.attempt_id)
            message = (
                f"worker {self.config.worker_id} was assigned more attempts than its "
                f"{self.config.concurrency} slot(s)"
            )
            report = fail_report("WorkerOverCapacity", message, retryable=True)
            task = asyncio.create_task(self._send_handback(assignment.attempt_id, report))
            self._handbacks.add(task)
            task.add_done_callback(self._handbacks.discard)
            return
        skill = self.worker.get_skill(assignment.skill)
        ids = {
            "worker_id": self.config.worker_id,
            "job": f"{assignment.job.namespace}/{assignment.job.name}",
            "attempt_id": assignment.attempt_id,
        }
        logger = logging.getLogger(f"worker_runtime.skill.{assignment.skill}")
        ctx = Context(
            job=assignment.job,
            attempt=assignment.attempt,
            attempt_id=assignment.attempt_id,
            skill=assignment.skill,
            worker_id=self.config.worker_id,
            deadline=assignment.deadline,
            params=assignment.params,
            logger=ContextLogger(logger, ids),
            _loop=asyncio.get_running_loop(),
        )
        attempt = _Attempt(assignment=assignment, skill=skill, ctx=ctx)
        ctx._send_progress = lambda pct, msg: self._send_progress(attempt, pct, msg)
        self._attempts[attempt.id] = attempt
        attempt.task = asyncio.create_task(self._run_attempt(attempt), name=f"attempt-{attempt.id}")

    # -- running one attempt -------------------------------------------------------------

    async def _run_attempt(self, attempt: _Attempt) -> None:
        a = attempt.assignment
        started = time.monotonic()
        self.metrics.started.labels(a.skill).inc()
        self.metrics.running.inc()
        with log_ids(job=f"{a.job.namespace}/{a.job.name}", attempt_id=a.attempt_id):
            log.info("attempt %d of %s: running skill %s", a.attempt, a.job.name, a.skill)
            try:
                report = await self._execute(attempt)
                outcome = self.metrics.succeeded if isinstance(report, CompleteReport) else None
                (outcome or self.metrics.failed).labels(a.skill).inc()
                self.metrics.duration.labels(a.skill).observe(time.monotonic() - started)
                if not attempt.abandoned:
                    await self._report(attempt, report)
            except asyncio.CancelledError:
                if not attempt.abandoned:
                    raise
                log.info("attempt abandoned: nothing reported")
            finally:
                if attempt.grace_timer is not None:
                    attempt.grace_timer.cancel()
                self.metrics.running.dec()
                self._attempts.pop(attempt.id, None)
                self._slot_freed.set()

    async def _execute(self, attempt: _Attempt) -> Report:
        skill = attempt.skill
        if skill is None:
            known = ", ".join(sorted(s.name for s in self.worker.skills)) or "none"
            message = f"this worker has no skill {attempt.assignment.skill!r} (it has: {known})"
            return fail_report("UnknownSkill", message, retryable=False)
        try:
            params = skill.parse_params(attempt.assignment.params)
        except SkillInputError as exc:
            log.warning("invalid params: %s", exc)
            return fail_report(exc.error_type, str(exc), retryable=False)
        if attempt.shutdown or attempt.cancel_requested:
            return self._stopped_report(attempt)  # stopped before it started
        attempt.execution = asyncio.ensure_future(skill.call(params, attempt.ctx))
        try:
            await asyncio.wait([attempt.execution])
        finally:
            if not attempt.execution.done():  # this task was cancelled (abandon / exit)
                attempt.execution.cancel()
        return self._report_for(attempt, skill)

    def _report_for(self, attempt: _Attempt, skill: Skill) -> Report:
        execution = attempt.execution
        assert execution is not None and execution.done()
        stopped_by_us = attempt.shutdown or attempt.cancel_requested
        if execution.cancelled():
            if stopped_by_us:
                return self._stopped_report(attempt)
            return failure_report(asyncio.CancelledError("the skill cancelled itself"))
        exc = execution.exception()
        if exc is None:
            try:
                result = skill.dump_result(execution.result())
            except SkillOutputError as out:
                log.error("%s", out)
                return fail_report(out.error_type, str(out), retryable=False)
            log.info("succeeded")
            return CompleteReport(result=result)
        if stopped_by_us:
            return self._stopped_report(attempt)  # it failed because we asked it to stop
        return failure_report(exc)

    def _stopped_report(self, attempt: _Attempt) -> FailReport:
        if attempt.shutdown:
            log.warning("handed back: the worker is shutting down")
            message = (
                f"worker {self.config.worker_id} shut down before the attempt finished "
                f"(drain timeout {self.config.drain_timeout_seconds:g}s)"
            )
            return fail_report("WorkerShutdown", message, retryable=True)
        reason = attempt.ctx.cancel_reason or "cancelled by the operator"
        log.info("cancelled: %s", reason)
        return fail_report("Cancelled", reason, retryable=False)

    # -- talking back ---------------------------------------------------------------------

    async def _report(self, attempt: _Attempt, report: Report) -> None:
        """Deliver the outcome, retrying transient trouble while the lease can last."""
        budget = self.shutdown_report_seconds if self.draining else max(30.0, self.lease_seconds)
        deadline = time.monotonic() + budget
        delay = self.retry_initial_seconds
        while True:
            sent = time.monotonic()
            try:
                if isinstance(report, CompleteReport):
                    await self.client.complete(attempt.id, report)
                else:
                    await self.client.fail(attempt.id, report)
                return
            except AttemptNotCurrent as exc:
                self._dropped(attempt, exc)
                return
            except (Unauthorized, OperatorUnavailable, ConfigError) as exc:
                problem = exc
            except ProtocolError as exc:
                if exc.code == WORKER_NOT_REGISTERED:  # the operator restarted: the lease may
                    await self._reregister(sent)  # still be ours, so register and report again
                    problem = exc
                elif exc.status == 404:  # unknown attempt: nothing left to report on
                    self._dropped(attempt, exc)
                    return
                else:
                    log.error("the operator refused the outcome: %s", exc)
                    return
            if time.monotonic() + delay > deadline:
                log.error("giving up reporting the outcome after %gs: %s", budget, problem)
                return
            log.warning("reporting the outcome failed: %s; retrying in %.1fs", problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max_seconds)

    def _dropped(self, attempt: _Attempt, exc: ProtocolError) -> None:
        log.info("the operator says the attempt is no longer current (%s): dropped", exc.message)
        self.metrics.dropped.labels(attempt.assignment.skill).inc()

    async def _send_handback(self, attempt_id: str, report: FailReport) -> None:
        with contextlib.suppress(OperatorError, ConfigError):
            await self.client.fail(attempt_id, report)

    async def _send_progress(self, attempt: _Attempt, percent: float, message: str) -> None:
        if attempt.abandoned or attempt.shutdown:
            return
        try:
            await self.client.progress(attempt.id, ProgressReport(percent=percent, message=message))
        except AttemptNotCurrent as exc:
            self._dropped(attempt, exc)
            self._abandon(attempt, "no longer current")
        except (OperatorError, ConfigError) as exc:
            log.debug("progress not delivered: %s", exc)

    # -- heartbeats and commands ---------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while True:
            await self._wait_any(self._wake_heartbeat, timeout=self.heartbeat_interval)
            self._wake_heartbeat.clear()
            request = HeartbeatRequest(attempt_ids=self.running_attempt_ids, draining=self.draining)
            sent = time.monotonic()
            try:
                response = await self.client.heartbeat(self.config.worker_id, request)
            except ProtocolError as exc:
                if exc.status == 404:
                    await self._reregister(sent)
                else:
                    log.warning("heartbeat refused: %s", exc)
                continue
            except (OperatorError, ConfigError) as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            except Exception:
                log.exception("heartbeat failed unexpectedly")
                continue
            for command in response.commands:
                self._obey(command)

    def _obey(self, command: Command) -> None:
        attempt = self._attempts.get(command.attempt_id or "")
        if attempt is None:
            log.debug("command %s for an attempt not running here: ignored", command.type)
            return
        if command.type == CommandType.cancel:
            self._cancel(attempt, command.reason or "the job was cancelled")
        elif command.type == CommandType.abandon:
            self._abandon(attempt, command.reason or "abandoned by the operator")

    def _cancel(self, attempt: _Attempt, reason: str) -> None:
        """Ask the skill to stop (``ctx.cancelled``), then cancel it after a grace period."""
        if attempt.cancel_requested:
            return
        log.info("attempt %s cancelled: %s", attempt.id, reason)
        attempt.cancel_requested = True
        attempt.ctx.cancel_reason = reason
        attempt.ctx.cancelled.set()
        loop = asyncio.get_running_loop()
        attempt.grace_timer = loop.call_later(
            self.cancel_grace_seconds, self._cancel_execution, attempt
        )

    def _abandon(self, attempt: _Attempt, reason: str) -> None:
        """Stop at once and report nothing: someone else now owns the job's outcome."""
        log.info("attempt %s abandoned: %s", attempt.id, reason)
        attempt.abandoned = True
        attempt.ctx.cancel_reason = reason
        attempt.ctx.cancelled.set()
        if attempt.task is not None and attempt.task is not asyncio.current_task():
            attempt.task.cancel()
        self._cancel_execution(attempt)

    @staticmethod
    def _cancel_execution(attempt: _Attempt) -> None:
        if attempt.execution is not None and not attempt.execution.done():
            attempt.execution.cancel()

    # -- draining --------------------------------------------------------------------------

    async def _finish(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_timeout_seconds
        while self._attempts and not self._force.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._slot_freed.clear()
            await self._wait_any(self._slot_freed, self._force, timeout=remaining)
        leftovers = list(self._attempts.values())
        if leftovers:
            log.warning("drain timeout: handing back %d running attempt(s)", len(leftovers))
        for attempt in leftovers:
            attempt.shutdown = True
            attempt.ctx.cancel_reason = "the worker is shutting down"
            attempt.ctx.cancelled.set()
            self._cancel_execution(attempt)
        tasks = [a.task for a in leftovers if a.task] + [*self._handbacks]
        if tasks:
            await asyncio.wait(tasks, timeout=self.shutdown_report_seconds)

    @staticmethod
    async def _wait_any(*awaitables: asyncio.Event | asyncio.Future, timeout: float | None = None):
        """Wait until one event is set or one future is done, or the timeout passes."""
        waiters = [
            asyncio.ensure_future(a.wait()) if isinstance(a, asyncio.Event) else a
            for a in awaitables
        ]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter, original in zip(waiters, awaitables, strict=True):
                if waiter is not original:
                    waiter.cancel()


def fail_report(
    error_type: str, message: str, *, retryable: bool, after: float | None = None
) -> FailReport:
    """A FailReport with its fields cut to the protocol's limits (an oversize one is a 422)."""
    if after is not None:
        after = min(max(float(after), 0.0), 86400.0)
    return FailReport(
        error_type=error_type[:256] or "Error",
        message=message[:4096],
        retryable=retryable,
        retry_after_seconds=after,
    )


def failure_report(exc: BaseException) -> FailReport:
    """How an exception raised by a skill is reported."""
    error_type = type(exc).__name__
    if isinstance(exc, FatalError):
        log.warning("failed (fatal, no retry): %s: %s", error_type, exc)
        return fail_report(error_type, str(exc), retryable=False)
    if isinstance(exc, RetryableError):
        log.warning("failed (retry requested, after %s s): %s: %s", exc.after, error_type, exc)
        return fail_report(error_type, str(exc), retryable=True, after=exc.after)
    log.error("failed with an unexpected %s (retried if policy allows)", error_type, exc_info=exc)
    return fail_report(error_type, str(exc), retryable=True)
