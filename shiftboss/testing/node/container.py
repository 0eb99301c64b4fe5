"""One container of a pod as a local process: start it, restart it per the restart
policy (with backoff), stop it (SIGTERM, grace period, SIGKILL), and keep its
``containerStatuses`` entry, ``state.terminated.message`` included."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftboss.testing.node.termination import (
    MAX_LOG_BYTES,
    MAX_MESSAGE_BYTES,
    exit_code,
    read_last_bytes,
    terminated_state,
    termination_message,
)
from shiftboss.testing.processes import _die_with_parent

#: Restart backoff: 1 s doubling up to this cap (the kubelet's cap is 300 s; tests need less).
MAX_RESTART_BACKOFF = 10.0
#: How long a process that ignored SIGKILL is waited for (it is in uninterruptible sleep).
KILL_WAIT_SECONDS = 5.0


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Launch:
    """How to start a container: its command line, environment and files."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path  # stdout and stderr, appended across restarts (what `kubectl logs` shows)
    message_file: Path  # the node's copy of the container's terminationMessagePath


@dataclass
class ContainerState:
    spec: dict[str, Any]
    proc: asyncio.subprocess.Process | None = None
    restart_count: int = 0
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    exit_code: int | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def container_id(self) -> str:
        return f"process://{self.proc.pid if self.proc else 0}"

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.spec.get("image") or "process",
            "imageID": "",
            "containerID": self.container_id,
            "ready": self.ready,
            "started": "running" in self.state,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }

    def exited(self, code: int, *, started: str, message: str, reason: str | None = None) -> None:
        self.exit_code, self.ready = code, False
        self.state = {
            "terminated": terminated_state(
                code,
                started=started,
                finished=now(),
                container_id=self.container_id,
                message=message,
                reason=reason,
            )
        }

    def backing_off(self, seconds: float) -> None:
        """Waiting to restart: the exit just recorded becomes ``lastState``."""
        self.last_state = self.state
        self.state = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {seconds:.0f}s restarting failed container",
            }
        }
        self.restart_count += 1


async def supervise(
    c: ContainerState,
    launch: Launch,
    *,
    policy: str,
    terminating: asyncio.Event,
    changed: Callable[[], None],
    grace_seconds: Callable[[], float],
) -> None:
    """Run the container until it exits for good (per ``policy``: Always, OnFailure,
    Never) or the pod terminates; ``changed`` is called whenever its status changed."""
    backoff = 1.0
    while not terminating.is_set():
        started = now()
        # Each run gets an empty message file and its own part of the (appended) log.
        launch.message_file.parent.mkdir(parents=True, exist_ok=True)
        launch.message_file.write_bytes(b"")
        log_start = launch.log.stat().st_size if launch.log.exists() else 0
        try:
            with open(launch.log, "ab") as out:
                c.proc = await asyncio.create_subprocess_exec(
                    *launch.argv,
                    env=launch.env,
                    cwd=launch.cwd,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    stdin=asyncio.subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
        except OSError as exc:
            code, message = 128, f"cannot run {launch.argv[0]!r}: {exc.strerror}"
            c.exited(code, started=started, message=message, reason="StartError")
        else:
            c.state = {"running": {"startedAt": started}}
            c.ready = not c.spec.get("readinessProbe")
            changed()
            code = await _wait_or_terminate(c.proc, terminating, grace_seconds)
            message = termination_message(
                read_last_bytes(launch.message_file, MAX_MESSAGE_BYTES),
                read_last_bytes(launch.log, MAX_LOG_BYTES, start=log_start),
                code,
                c.spec.get("terminationMessagePolicy"),
            )
            c.exited(code, started=started, message=message)
        changed()
        restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        if not restart or terminating.is_set():
            return
        c.backing_off(backoff)
        changed()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(terminating.wait(), backoff)
        backoff = min(backoff * 2, MAX_RESTART_BACKOFF)


async def _wait_or_terminate(
    proc: asyncio.subprocess.Process,
    terminating: asyncio.Event,
    grace_seconds: Callable[[], float],
) -> int:
    exit_wait = asyncio.ensure_future(proc.wait())
    term_wait = asyncio.ensure_future(terminating.wait())
    done, _ = await asyncio.wait({exit_wait, term_wait}, return_when=asyncio.FIRST_COMPLETED)
    term_wait.cancel()
    if exit_wait in done:
        _kill_group(proc.pid)  # a container ends with its main process, as in Kubernetes
    else:
        await stop_process(proc, grace_seconds())
    return exit_code(await exit_wait)


async def stop_process(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the container's process group, SIGKILL what is left after the grace period.
    Nothing for a process that already ended: its group was swept then, and its id may
    since belong to an unrelated process (ids wrap at pid_max, 32768 by default)."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace)
    _kill_group(proc.pid)  # also reaches children the leader left behind in its group
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), KILL_WAIT_SECONDS)


def _kill_group(pgid: int) -> None:
    """SIGKILL a process group; only right after its leader ended (or while it runs), when
    the id cannot have been given to another process yet."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
