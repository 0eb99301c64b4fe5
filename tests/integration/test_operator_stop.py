"""Stopping the operator. Stopped while Kopf reads the served resources (its start-up
scan), it exits cleanly: Kopf closes its API session under requests still on their way,
and those must end as Kopf expects (it retries or drops them), not with aiohttp's bare
AssertionError, which crashed the operator at exit with a traceback (seen in CI). And an
operator that will not stop can be asked where it is stuck (SIGUSR1/SIGUSR2)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until

SLOW_PROXY_LOOKUP = Path(__file__).parent / "apps" / "slow_proxy_lookup"


def test_an_operator_stopped_during_kopfs_start_up_scan_exits_cleanly(cluster, namespace, tmp_path):
    env = {**cluster.env(), "PYTHONPATH": os.pathsep.join([str(SLOW_PROXY_LOOKUP), *_path()])}
    for run in range(3):
        log = tmp_path / f"operator-{run}.log"
        operator = OperatorProcess(env, log, namespaces=[namespace]).start(wait=False)
        wait_until(
            lambda log=log: "Initial authentication has finished" in _text(log),
            timeout=60,
            what="Kopf to log in",
        )
        # Kopf's scan starts now; each of its requests spends 0.5 s in the proxy lookup.
        time.sleep(0.3)
        operator.stop()
        text = _text(log)
        assert "Traceback" not in text, text[-5000:]
        assert operator.process.exit_code() == 0, text[-5000:]


def _text(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def _path() -> list[str]:
    existing = os.environ.get("PYTHONPATH")
    return existing.split(os.pathsep) if existing else []


def test_the_operator_prints_its_stacks_when_asked(operator, tmp_path):
    """SIGUSR1: every thread's stack (answers even with the event loop blocked); SIGUSR2:
    every asyncio task's. The tests send both to an operator that does not stop in time."""
    log = tmp_path / "operator.log"
    pid = operator.process.pid
    os.kill(pid, signal.SIGUSR1)
    wait_until(lambda: "Current thread 0x" in _text(log), timeout=10, what="the thread dump")
    os.kill(pid, signal.SIGUSR2)
    wait_until(lambda: "--- end of asyncio tasks ---" in _text(log), timeout=10, what="tasks")
    tasks = _text(log).split("asyncio tasks (SIGUSR2) ---", 1)[1]
    assert "Stack for <Task" in tasks and "serve" in tasks, tasks[:3000]
    assert operator.process.running()  # a dump changes nothing
