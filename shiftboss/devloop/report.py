"""Progress on the terminal for ``shiftboss dev``: one status line per step with
``rich`` (the ``cli`` extra) on a terminal, time-stamped plain lines otherwise."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from shiftboss.testing.binaries import BuildReport, PlainReport

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status


class RichReport:
    """A spinner naming the current step; finished steps and tool output above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status: Status = console.status("starting")
        self.current = ""

    def step(self, message: str) -> None:
        if self.current:
            self.console.log(f"[green]done[/] {self.current}", highlight=False)
        self.current = message
        self.status.update(message)

    def progress(self, message: str) -> None:
        self.status.update(f"{self.current}: {message}")

    def output(self, line: str) -> None:
        self.console.print(line, markup=False, highlight=False)

    def finish(self) -> None:
        if self.current:
            self.console.log(f"[green]done[/] {self.current}", highlight=False)
        self.current = ""


@contextlib.contextmanager
def terminal_report(plain: bool = False) -> Iterator[BuildReport]:
    """A ``RichReport`` while the block runs, when ``rich`` is installed and stderr is a
    terminal (a status line that is redrawn says nothing in a log); else plain lines."""
    console = None if plain or not sys.stderr.isatty() else _rich_console()
    if console is None:
        yield PlainReport()
        return
    report = RichReport(console)
    with report.status:
        yield report
    report.finish()


def _rich_console() -> Console | None:
    try:
        from rich.console import Console
    except ImportError:  # a worker-only install: plain lines do
        return None
    return Console(stderr=True, log_path=False)
