"""A process that already ended is never signalled again, by the test harness
(``ManagedProcess``) or by the process node (``stop_process``): its id may since belong to
an unrelated process, as ids wrap at pid_max (32768 by default), and a stale SIGKILL to
that group killed one. A container's group is swept when its main process ends instead."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from shiftboss.testing.node import container
from shiftboss.testing.processes import ManagedProcess


@pytest.fixture
def signals(monkeypatch) -> list[tuple[int, int]]:
    sent: list[tuple[int, int]] = []
    real = os.killpg

    def record(pgid: int, sig: int) -> None:
        sent.append((pgid, sig))
        real(pgid, sig)

    monkeypatch.setattr(os, "killpg", record)
    return sent


def test_a_managed_process_that_ended_is_not_signalled_again(tmp_path: Path, signals) -> None:
    process = ManagedProcess("quick", ["true"], tmp_path / "quick.log").start()
    assert process.proc is not None
    process.proc.wait(10)  # ended and reaped: its id is free for others
    process.stop()
    process.kill()
    process.thaw()
    assert signals == []


def test_stopping_a_running_managed_process_signals_its_group(tmp_path: Path, signals) -> None:
    process = ManagedProcess("sleeper", ["sleep", "30"], tmp_path / "sleep.log").start()
    assert process.pid is not None
    process.stop(timeout=5)
    assert (process.pid, signal.SIGTERM) in signals
    assert process.exit_code() == -signal.SIGTERM
    signals.clear()
    process.stop()  # a second stop: the group is gone
    assert signals == []


async def test_the_node_signals_no_container_that_already_ended(signals) -> None:
    proc = await asyncio.create_subprocess_exec("true", start_new_session=True)
    await proc.wait()
    await container.stop_process(proc, grace=1)
    assert signals == []


async def test_a_container_ends_with_its_main_process_taking_its_group(tmp_path: Path) -> None:
    """The leader exits and leaves a child behind in its group: the child is killed then."""
    pid_file = tmp_path / "child.pid"
    proc = await asyncio.create_subprocess_exec(
        "sh", "-c", f"sleep 30 & echo $! > {pid_file}; exit 3", start_new_session=True
    )
    code = await container._wait_or_terminate(proc, asyncio.Event(), lambda: 1.0)
    assert code == 3
    child = int(pid_file.read_text())
    for _ in range(100):
        if not _alive(child):
            break
        await asyncio.sleep(0.05)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_stop_that_hangs_asks_for_the_stacks_before_the_kill(tmp_path):
    asked: list[bool] = []
    stubborn = ManagedProcess(
        "stubborn", ["sh", "-c", "trap '' TERM; sleep 30"], tmp_path / "stubborn.log"
    ).start()
    time.sleep(0.3)  # let the shell set its trap
    stubborn.stop(timeout=0.5, before_kill=lambda: asked.append(stubborn.running()))
    assert asked == [True]
    assert stubborn.exit_code() == -signal.SIGKILL
