"""Child processes that are stopped by their own process id, never by name.

Each child runs in its own session (so its whole process group can be signalled)
and asks the kernel to kill it if its parent dies, so a crashed test run cannot
leave an etcd or an API server behind. ``freeze()`` stops a child in its tracks
(SIGSTOP: it keeps its sockets but answers nothing, like a stalled or paused
machine) until ``thaw()``; ``stop()`` thaws first, so it never waits on a frozen child.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

_PR_SET_PDEATHSIG = 1
T = TypeVar("T")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    """A long-running child whose output goes to ``log``."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name, self.argv, self.log = name, argv, log
        self._env, self._cwd = env, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        #: True between ``freeze()`` and ``thaw()`` (or the end of the process).
        self.frozen = False

    def start(self) -> ManagedProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.frozen = False
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def stop(self, timeout: float = 10.0, *, before_kill: Callable[[], None] | None = None) -> None:
        """SIGTERM the child's process group, then SIGKILL whatever is left after ``timeout``.

        Nothing for a child that had already ended and been reaped: its id may since
        belong to an unrelated process (ids wrap at pid_max, 32768 by default), and
        signalling it would stop or kill that one (the group was swept when it ended here)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.thaw()  # a stopped process would hold SIGTERM pending until the timeout
        _signal_group(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        if before_kill is not None and self.proc.poll() is None:
            before_kill()  # e.g. ask it where it is stuck
        # Stragglers in the group, right after the leader ended (or still running).
        _signal_group(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL the child's process group at once: a crash, not a shutdown."""
        if self.proc is not None and self.proc.returncode is None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self.frozen = False

    def freeze(self, timeout: float = 5.0) -> None:
        """SIGSTOP the child's process group; returns once the child is stopped."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running, so it cannot be frozen")
        _signal_group(self.proc.pid, signal.SIGSTOP)
        self.frozen = True
        pid = self.proc.pid
        wait_until(
            lambda: _state(pid) in ("T", "Z", None),
            timeout=timeout,
            interval=0.01,
            what=f"{self.name} (pid {pid}) to stop",
        )

    def thaw(self) -> None:
        """SIGCONT the child's process group, if ``freeze()`` stopped it."""
        if self.proc is not None and self.frozen and self.proc.returncode is None:
            _signal_group(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (``T``: stopped), None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]  # the name in (...) may hold spaces


def wait_until(
    predicate: Callable[[], T], *, timeout: float, interval: float = 0.2, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns a truthy value; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the thing we wait for may not answer yet
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
