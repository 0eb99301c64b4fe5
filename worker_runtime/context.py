"""``Context``: what a skill knows about the attempt it runs, and how it talks back."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .logs import ContextLogger
from .protocol import Assignment, JobRef

ProgressSender = Callable[[float, str], Awaitable[None]]


async def _no_progress(percent: float, message: str) -> None:
    return None


@dataclass
class Context:
    """Passed to a skill as its second argument (optional in the skill's signature).

    ``cancelled`` is set when the attempt must stop: its job was cancelled, it passed its
    deadline, the worker lost its lease, or the worker is shutting down
    (``cancel_reason`` says which).  Long skills should check ``ctx.cancelled.is_set()``
    (safe from threads too) and return early.  An async skill that ignores it is
    cancelled (``CancelledError``) after a grace; a sync skill's thread cannot be
    interrupted, so the worker waits for it (its slot stays taken) and reports what it
    returns then.  A result returned after all is reported as a success.
    """

    job: JobRef
    attempt: int
    attempt_id: str
    skill: str
    worker_id: str
    deadline: datetime | None
    #: The params as received (JSON); the skill's first argument is their validated form.
    params: dict[str, Any]
    logger: logging.LoggerAdapter[logging.Logger]
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    #: Why the attempt was cancelled (the operator's reason), once it is.
    cancel_reason: str = ""
    _send_progress: ProgressSender = field(default=_no_progress, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    @classmethod
    def for_assignment(cls, assignment: Assignment, worker_id: str) -> Context:
        """The context of one attempt, its logger carrying the worker, job and attempt ids."""
        ids = {
            "worker_id": worker_id,
            "job": f"{assignment.job.namespace}/{assignment.job.name}",
            "attempt_id": assignment.attempt_id,
        }
        logger = logging.getLogger(f"worker_runtime.skill.{assignment.skill}")
        return cls(
            job=assignment.job,
            attempt=assignment.attempt,
            attempt_id=assignment.attempt_id,
            skill=assignment.skill,
            worker_id=worker_id,
            deadline=assignment.deadline,
            params=assignment.params,
            logger=ContextLogger(logger, ids),
            _loop=asyncio.get_running_loop(),
        )

    async def progress(self, percent: float, message: str = "") -> None:
        """Report progress (0-100) to the Job's status. Best effort: never raises."""
        await self._send_progress(min(max(float(percent), 0.0), 100.0), message[:1024])

    def progress_sync(self, percent: float, message: str = "", timeout: float = 10.0) -> None:
        """``progress`` for sync skills, which run in a thread without an event loop."""
        if self._loop is None or self._loop.is_closed():
            return
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:  # waiting here would block the very loop that sends the report
            raise RuntimeError("in an async skill, use `await ctx.progress(...)`")
        try:
            future = asyncio.run_coroutine_threadsafe(self.progress(percent, message), self._loop)
        except RuntimeError:
            return  # the loop is shutting down
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()  # the operator is slow: progress is optional

    def seconds_left(self) -> float | None:
        """Seconds until ``deadline`` (negative once past), or None without a deadline."""
        if self.deadline is None:
            return None
        deadline = self.deadline if self.deadline.tzinfo else self.deadline.replace(tzinfo=UTC)
        return (deadline - datetime.now(UTC)).total_seconds()
