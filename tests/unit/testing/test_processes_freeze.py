"""ManagedProcess.freeze/thaw against a real child process (no cluster needed)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shiftboss.testing.processes import ManagedProcess, _state, wait_until

# Prints a line every 20 ms; SIGTERM makes it print "bye" and exit 0 (a graceful stop).
TICKER = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print("bye", flush=True), sys.exit(0)))
while True:
    print("tick", flush=True)
    time.sleep(0.02)
"""


@pytest.fixture
def ticker(tmp_path: Path) -> Iterator[ManagedProcess]:
    proc = ManagedProcess("ticker", [sys.executable, "-c", TICKER], tmp_path / "ticker.log")
    proc.start()
    wait_until(lambda: "tick" in proc.tail(), timeout=10, interval=0.02, what="the first tick")
    yield proc
    proc.kill()


def ticks(proc: ManagedProcess) -> int:
    return proc.log.read_text().count("tick")


def test_freeze_stops_the_process_and_thaw_resumes_it(ticker: ManagedProcess) -> None:
    ticker.freeze()

    assert ticker.frozen
    assert _state(ticker.pid or 0) == "T"  # freeze returns only once the kernel stopped it
    frozen_at = ticks(ticker)

    ticker.thaw()

    assert not ticker.frozen
    wait_until(
        lambda: ticks(ticker) >= frozen_at + 3, timeout=10, interval=0.02, what="ticks after thaw"
    )
    assert _state(ticker.pid or 0) != "T"


def test_stop_of_a_frozen_process_is_a_graceful_stop_not_a_timeout(
    ticker: ManagedProcess,
) -> None:
    ticker.freeze()
    started = time.monotonic()

    ticker.stop(timeout=10)

    assert ticker.exit_code() == 0  # the SIGTERM handler ran: it was thawed, not SIGKILLed
    assert "bye" in ticker.tail()
    assert time.monotonic() - started < 5
    assert not ticker.frozen


def test_kill_of_a_frozen_process_ends_it(ticker: ManagedProcess) -> None:
    ticker.freeze()

    ticker.kill()

    assert ticker.exit_code() == -signal.SIGKILL
    assert not ticker.frozen


def test_a_process_that_is_not_running_cannot_be_frozen(tmp_path: Path) -> None:
    proc = ManagedProcess("never-started", [sys.executable, "-c", "pass"], tmp_path / "x.log")

    with pytest.raises(RuntimeError, match="never-started is not running"):
        proc.freeze()
