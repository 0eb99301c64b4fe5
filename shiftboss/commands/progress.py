"""Waiting for a job while showing how it goes: on a terminal a live ``rich`` progress bar
fed by the job's phase and ``status.progress``; elsewhere (a pipe, CI logs) one line per
change. The outcome comes from the client's own ``wait`` (a watch); the display reads the
Job beside it, so a slow read never delays the outcome."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from shiftboss.api.job import Job, JobPhase, is_terminal
from shiftboss.client import AsyncClient
from shiftboss.client.runs import finished, requested_run

#: How often the display reads the job (progress is written at most every 5 s).
POLL_SECONDS = 1.0


def stderr_console() -> Console:
    """Where progress goes, so that stdout carries only the result."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


class ProgressDisplay:
    """Shows one job's phase, percent and message on ``console`` (use as a context
    manager)."""

    def __init__(self, console: Console, name: str) -> None:
        self.console, self.name = console, name
        self._last: tuple[str, float, str] | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        if console.is_terminal:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            self._task = self._bar.add_task(f"{name} Pending", total=100)

    def __enter__(self) -> ProgressDisplay:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def show(self, job: Job) -> None:
        status = job.status
        phase = str(status.phase if status and status.phase else JobPhase.PENDING)
        if is_terminal(phase) and not finished(job):
            # A rerun requested: the earlier run's end is not this run's.
            self.update(JobPhase.PENDING, 0.0, f"run {requested_run(job)} requested")
            return
        progress = status.progress if status else None
        percent = progress.percent if progress else 0.0
        if phase == JobPhase.SUCCEEDED:
            percent = 100.0
        text = (progress.message if progress else None) or (status.message if status else None)
        self.update(phase, percent, text or "")

    def update(self, phase: str, percent: float, text: str) -> None:
        if self._last == (phase, percent, text):
            return
        self._last = (phase, percent, text)
        description = f"{self.name} {phase}" + (f": {text}" if text else "")
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=percent, description=description)
        else:
            self.console.print(f"{description} ({percent:g}%)", highlight=False, soft_wrap=True)


async def wait_showing(
    client: AsyncClient, job: Job, timeout: float | None, console: Console
) -> Any:
    """``client.wait(job, timeout)`` (its result, or its exception), showing progress."""
    name = str(job.name)
    with ProgressDisplay(console, name) as display:
        display.show(job)
        waiting = asyncio.create_task(client.wait(job, timeout))
        try:
            while not (await asyncio.wait({waiting}, timeout=POLL_SECONDS))[0]:
                # The wait's watch recovers from a broken connection; the display catches up.
                with contextlib.suppress(httpx.TransportError):
                    display.show(await client.get(name))
        finally:
            waiting.cancel()
        try:
            result = waiting.result()
        except Exception as exc:
            finished = getattr(exc, "job", None)
            if isinstance(finished, Job):
                display.show(finished)
            raise
        display.update(JobPhase.SUCCEEDED, 100.0, "")
        return result
