"""Why a worker pod ended, read from its status (pure).

Worker pods have ``terminationMessagePolicy: FallbackToLogsOnError``: when the worker
fails without writing a termination message, the kubelet puts the tail of its log in
``state.terminated.message``.  The pool controller takes the last error line from
there and says it in the pool's condition and Event, since the pod (and with it
``kubectl logs``) may be gone by the time someone looks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .pods import WORKER_CONTAINER
from .timestamps import timestamp

__all__ = ["MAX_CAUSE_CHARS", "WorkerExit", "last_error_line", "worker_exit"]

#: A cause longer than this is cut (with "..."): it goes into conditions and Events.
MAX_CAUSE_CHARS = 400

# Words that mark a line as an error, in Python, Go and most logs.
_ERROR_WORDS = re.compile(
    r"error|exception|fatal|panic|traceback|failed|refused|denied|cannot|can't|no module",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class WorkerExit:
    """How a worker pod ended on its own."""

    code: int | None  # the worker container's exit code; None when it never ran to an exit
    cause: str  # its last error line, or the pod's own reason; may be empty
    finished_at: float | None  # POSIX time of the exit, when known

    def describe(self) -> str:
        """One line for a condition message or an Event, e.g. ``worker exited with code
        1: ModuleNotFoundError: No module named 'nosuchmodule'``."""
        what = "worker pod failed" if self.code is None else f"worker exited with code {self.code}"
        return f"{what}: {self.cause}" if self.cause else what


def _unwrap_json(line: str) -> str:
    """A JSON log entry as its message (and its exception's last line, if any)."""
    if not line.startswith("{"):
        return line
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict):
        return line
    exception = str(entry.get("exception") or "").strip()
    if exception:
        return exception.splitlines()[-1].strip()
    message = entry.get("message") or entry.get("msg")
    return str(message) if message else line


def last_error_line(text: str) -> str:
    """The last line of ``text`` that reads as an error (else its last line), cut to
    :data:`MAX_CAUSE_CHARS`; JSON log entries count by their message."""
    lines = [_unwrap_json(line.strip()) for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = next((candidate for candidate in reversed(lines) if _ERROR_WORDS.search(candidate)), "")
    line = line or lines[-1]
    return line if len(line) <= MAX_CAUSE_CHARS else line[: MAX_CAUSE_CHARS - 3] + "..."


def _worker_status(statuses: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    named = [s for s in statuses if s.get("name") == WORKER_CONTAINER]
    candidates = named or statuses
    return candidates[0] if candidates else None


def worker_exit(pod: Mapping[str, Any]) -> WorkerExit:
    """How the (finished) worker pod ``pod`` ended, as the API server returns it."""
    status = pod.get("status") or {}
    container = _worker_status(status.get("containerStatuses") or [])
    terminated = ((container or {}).get("state") or {}).get("terminated")
    if terminated:
        code = terminated.get("exitCode")
        cause = last_error_line(terminated.get("message") or "")
        if not cause and terminated.get("reason") not in (None, "Error", "Completed"):
            cause = str(terminated["reason"])  # e.g. OOMKilled, StartError
        finished = terminated.get("finishedAt")
        return WorkerExit(
            code=int(code) if code is not None else None,
            cause=cause,
            finished_at=timestamp(finished) if finished else None,
        )
    # Ended without a container exit: evicted, or its node was lost.
    reason, message = status.get("reason") or "", status.get("message") or ""
    cause = f"{reason}: {message}" if reason and message else reason or message
    return WorkerExit(code=None, cause=last_error_line(cause), finished_at=None)
