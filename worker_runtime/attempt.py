"""One attempt: run its skill, stop it when asked to, and say how it ended.

The rules (docs/worker-protocol.md, "Cancellation, timeouts and deadlines" and
"Outcomes"):

* Stopping an attempt (the operator's ``cancel``, the attempt's own deadline, a lapsed
  lease, the end of a drain) sets ``ctx.cancelled`` and ``ctx.cancel_reason``, waits a
  grace, then cancels an async skill.  A sync skill's thread cannot be interrupted.
* The outcome is decided once the skill has really returned: a result is reported as
  ``complete`` even if the attempt was being stopped (finished work is never thrown
  away); an error or a cancellation is reported as the reason it was stopped.  Only at
  the end of a drain is a thread that ignores ``ctx.cancelled`` left behind: its
  attempt is released and the process exits.
* ``abandon`` stops at once and reports nothing.
* The attempt's slot stays taken (``busy``) until the skill's code has returned, a sync
  skill's thread included, whatever happened to the attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from .client import Outcome
from .context import Context
from .errors import FatalError, RetryableError
from .protocol import Assignment, CompleteReport, FailReport, ReleaseReport
from .skills import Skill, SkillCall, SkillInputError, SkillOutputError

log = logging.getLogger(__name__)


class StopCause(StrEnum):
    cancelled = "Cancelled"
    timed_out = "TimedOut"
    lease_expired = "LeaseExpired"
    shutdown = "WorkerShutdown"


@dataclass(frozen=True)
class Stop:
    """Why an attempt is being stopped, and what it reports unless it completes anyway."""

    cause: StopCause
    reason: str
    outcome: Outcome

    @classmethod
    def cancelled(cls, reason: str) -> Stop:
        reason = reason or "cancelled by the operator"
        return cls(StopCause.cancelled, reason, fail_report("Cancelled", reason, retryable=False))

    @classmethod
    def timed_out(cls, deadline: datetime) -> Stop:
        reason = f"the attempt passed its deadline {deadline.isoformat()}"
        return cls(StopCause.timed_out, reason, fail_report("TimedOut", reason, retryable=True))

    @classmethod
    def lease_expired(cls, worker_id: str, lease_seconds: float) -> Stop:
        reason = (
            f"worker {worker_id} could not renew its lease with the operator for "
            f"{lease_seconds:g}s; the work may already run elsewhere"
        )
        outcome = fail_report("LeaseExpired", reason, retryable=True)
        return cls(StopCause.lease_expired, reason, outcome)

    @classmethod
    def shutdown(cls, worker_id: str) -> Stop:
        reason = f"worker {worker_id} is shutting down"
        return cls(StopCause.shutdown, reason, ReleaseReport(reason=reason))


class Attempt:
    """One attempt of a job on this worker; ``run()`` returns its outcome (None: abandoned)."""

    def __init__(
        self,
        assignment: Assignment,
        skill: Skill,
        ctx: Context,
        *,
        lease_until: float,
        cancel_grace: float,
        on_returned: Callable[[Attempt], None],
    ) -> None:
        self.assignment = assignment
        self.skill = skill
        self.ctx = ctx
        #: When the worker's view of this attempt's lease ends (a ``LeaseClock`` reading).
        self.lease_until = lease_until
        self.cancel_grace = cancel_grace
        self.stop_cause: Stop | None = None
        self.abandoned = False
        #: The skill's code has not returned yet: the attempt holds a slot.
        self.busy = True
        #: ``run()`` has ended: the outcome (if any) is known.
        self.ended = False
        self._on_returned = on_returned
        self._loop = asyncio.get_running_loop()
        self._call: SkillCall | None = None
        self._given_up: asyncio.Future[None] = self._loop.create_future()
        self._cancel_at: float | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._shutting_down = False

    @property
    def id(self) -> str:
        return self.assignment.attempt_id

    @property
    def running(self) -> bool:
        """Running or stopping: held by this worker, with no outcome yet."""
        return not self.ended and not self.abandoned

    def renew(self, valid_until: float) -> None:
        self.lease_until = max(self.lease_until, valid_until)

    # -- stopping ---------------------------------------------------------------------

    def stop(self, stop: Stop, grace: float) -> None:
        """Ask the skill to stop now, and cancel it after ``grace`` seconds.

        The first reason given decides the report; a later, shorter grace (the end of
        a drain) still brings the cancellation forward.
        """
        if not self.running:
            return
        # At shutdown a thread that ignores ctx.cancelled is left behind (_cancel_skill),
        # whatever stopped the attempt first.
        newly_shutting_down = stop.cause == StopCause.shutdown and not self._shutting_down
        self._shutting_down |= newly_shutting_down
        if self.stop_cause is None:
            log.info("stopping attempt %s: %s", self.id, stop.reason)
            self.stop_cause = stop
            self.ctx.cancel_reason = stop.reason
            self.ctx.cancelled.set()
        cancel_at = self._loop.time() + max(grace, 0.0)
        if self._cancel_at is None or cancel_at < self._cancel_at or newly_shutting_down:
            self._cancel_at = min(cancel_at, self._cancel_at or cancel_at)
            self._timers.append(self._loop.call_at(cancel_at, self._cancel_skill))

    def abandon(self, reason: str) -> None:
        """Stop at once and report nothing: the operator has already decided this attempt."""
        if self.abandoned or self.ended:
            return
        log.info("attempt %s abandoned: %s", self.id, reason)
        self.abandoned = True
        self.ctx.cancel_reason = self.ctx.cancel_reason or reason
        self.ctx.cancelled.set()
        if self._call is not None:
            self._call.stop()
        self._give_up()

    def _cancel_skill(self) -> None:
        if self._call is None or self._call.finished.done():
            return
        self._call.stop()
        if self._shutting_down and not self._call.stoppable:
            log.warning(
                "the skill's thread ignores ctx.cancelled: releasing %s without it", self.id
            )
            self._give_up()

    def _give_up(self) -> None:
        if not self._given_up.done():
            self._given_up.set_result(None)

    def _returned(self) -> None:
        if self.busy:
            self.busy = False
            self._on_returned(self)

    # -- running ------------------------------------------------------------------------

    async def run(self) -> Outcome | None:
        try:
            outcome = await self._execute()
        finally:
            self.ended = True
            for timer in self._timers:
                timer.cancel()
            if self._call is None:
                self._returned()
        return None if self.abandoned else outcome

    async def _execute(self) -> Outcome | None:
        try:
            params = self.skill.parse_params(self.assignment.params)
        except SkillInputError as exc:
            log.warning("invalid params: %s", exc)
            return fail_report(exc.error_type, str(exc), retryable=False)
        self._watch_deadline()
        if self.stop_cause is not None or self.abandoned:
            return self.stop_cause.outcome if self.stop_cause else None  # before it started
        call = self._call = self.skill.start(params, self.ctx)
        call.finished.add_done_callback(lambda _: self._returned())
        try:
            await asyncio.wait([call.finished, self._given_up], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # the runner is exiting
            call.stop()
            raise
        if self.abandoned:
            return None
        if not call.finished.done():  # given up at the end of a drain
            assert self.stop_cause is not None
            return self.stop_cause.outcome
        return self._outcome(call.finished)

    def _watch_deadline(self) -> None:
        deadline = self.assignment.deadline
        left = self.ctx.seconds_left()
        if deadline is None or left is None:
            return
        stop = Stop.timed_out(deadline)
        if left <= 0:
            self.stop(stop, self.cancel_grace)
        else:
            self._timers.append(self._loop.call_later(left, self.stop, stop, self.cancel_grace))

    def _outcome(self, finished: asyncio.Future[object]) -> Outcome:
        stop = self.stop_cause
        if finished.cancelled():
            if stop is not None:
                return stop.outcome
            return failure_report(asyncio.CancelledError("the skill cancelled itself"))
        exc = finished.exception()
        if exc is None:
            try:
                result = self.skill.dump_result(finished.result())
            except SkillOutputError as out:
                log.error("%s", out)
                return fail_report(out.error_type, str(out), retryable=False)
            log.info("succeeded" if stop is None else "completed while being stopped")
            return CompleteReport(result=result)
        if stop is not None:
            return stop.outcome  # it failed because it was asked to stop
        return failure_report(exc)


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
