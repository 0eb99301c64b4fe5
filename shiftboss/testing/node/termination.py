"""The kubelet's part of a container's exit: ``state.terminated`` and its ``message``.

A program may write why it ended to its ``terminationMessagePath`` (a file the node
creates empty before each start).  With ``terminationMessagePolicy:
FallbackToLogsOnError`` and a non-zero exit, an empty file is replaced by the tail of
the container's log, so that the cause stays visible in the pod's status after the
logs are gone.  The limits are the kubelet's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_MESSAGE_PATH",
    "FALLBACK_TO_LOGS",
    "MAX_LOG_BYTES",
    "MAX_LOG_LINES",
    "MAX_MESSAGE_BYTES",
    "exit_code",
    "exit_reason",
    "log_tail",
    "read_last_bytes",
    "terminated_state",
    "termination_message",
]

#: Where a container writes its termination message unless its spec says otherwise.
DEFAULT_MESSAGE_PATH = "/dev/termination-log"
#: The policy that falls back to the log's tail when the program wrote no message.
FALLBACK_TO_LOGS = "FallbackToLogsOnError"
#: The kubelet reads at most the last 4 KiB of the termination-message file...
MAX_MESSAGE_BYTES = 4096
#: ...and of the log, at most the last 80 lines and of those the last 2 KiB.
MAX_LOG_LINES = 80
MAX_LOG_BYTES = 2048


def exit_code(returncode: int) -> int:
    """A process's return code as a container runtime reports it: a process killed by
    signal N (``-N`` in Python) exited with ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode


def exit_reason(code: int) -> str:
    """``state.terminated.reason`` for an exit code."""
    return "Completed" if code == 0 else "Error"


def log_tail(data: bytes, max_lines: int = MAX_LOG_LINES, max_bytes: int = MAX_LOG_BYTES) -> str:
    """The last ``max_lines`` lines of a log, of those at most the last ``max_bytes``."""
    lines = data.splitlines(keepends=True)[-max_lines:] if max_lines else []
    return b"".join(lines)[-max_bytes:].decode("utf-8", errors="replace")


def termination_message(
    written: bytes, log: bytes, code: int, policy: str | None, *, max_bytes: int = MAX_MESSAGE_BYTES
) -> str:
    """``state.terminated.message``: what the program wrote to its termination-message
    file (its last ``max_bytes``); if nothing and the policy is ``FallbackToLogsOnError``
    and the exit was a failure, the tail of its log; else nothing."""
    if written.strip():
        return written[-max_bytes:].decode("utf-8", errors="replace")
    if policy == FALLBACK_TO_LOGS and code != 0:
        return log_tail(log)
    return ""


def terminated_state(
    code: int,
    *,
    started: str,
    finished: str,
    container_id: str,
    message: str = "",
    reason: str | None = None,
) -> dict[str, Any]:
    """A container's ``state`` after it exited (``reason`` defaults to the exit code's)."""
    state: dict[str, Any] = {
        "exitCode": code,
        "reason": reason or exit_reason(code),
        "startedAt": started,
        "finishedAt": finished,
        "containerID": container_id,
    }
    if message:
        state["message"] = message
    return state


def read_last_bytes(path: Path, limit: int, *, start: int = 0) -> bytes:
    """The last ``limit`` bytes of ``path`` after offset ``start`` (b"" if it is missing)."""
    try:
        with open(path, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(start, size - limit))
            return file.read(limit)
    except OSError:
        return b""
