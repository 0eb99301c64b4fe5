"""Pools of the traced worker app (``apps/fault_worker.py``) and ways to count what ran.

Every execution of its skills leaves ``start``/``stopped``/``end`` lines in a trace file, so
a fault test can say exactly how often each job's skill ran, whatever the Job's status says.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from apps.fault_worker import read_trace
from conftest import get, pool_manifest
from fakeworker import JOBS

from shiftboss.testing.processes import wait_until

APPS = Path(__file__).resolve().parent / "apps"
ONCE = {"maxAttempts": 1}


def fault_pool(name: str, trace: Path, *, env: dict[str, str] | None = None, **spec: Any) -> dict:
    manifest = pool_manifest(name, **spec)
    manifest["spec"]["app"] = "fault_worker:worker"
    variables = {"PYTHONPATH": str(APPS), "SIDE_EFFECTS": str(trace), **(env or {})}
    manifest["spec"]["env"] = [{"name": k, "value": v} for k, v in variables.items()]
    return manifest


def runs(trace: Path) -> Counter[str]:
    """How many times each job's skill started."""
    return Counter(line["job"] for line in read_trace(str(trace)) if line["event"] == "start")


def jobs(cluster, namespace: str) -> dict[str, dict]:
    return {j["metadata"]["name"]: j for j in get(cluster, namespace, JOBS)["items"]}


def wait_phases(cluster, namespace: str, names: list[str], phases: set[str], timeout: float):
    def reached() -> dict[str, dict] | None:
        found = {n: j.get("status", {}) for n, j in jobs(cluster, namespace).items()}
        if all(found.get(n, {}).get("phase") in phases for n in names):
            return {n: found[n] for n in names}
        return None

    return wait_until(reached, timeout=timeout, interval=0.5, what=f"{names} in {sorted(phases)}")


def assert_ran_once(status: dict) -> None:
    """Succeeded on its first attempt, with one attempt in its history."""
    assert (status["phase"], status["attempt"], status["countedAttempts"]) == (
        "Succeeded",
        1,
        1,
    ), status
    assert [a["outcome"] for a in status["attempts"]] == ["Succeeded"], status


def clean_log(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-5000:]


def events_of(trace: Path, job: str) -> list[dict]:
    return [line for line in read_trace(str(trace)) if line["job"] == job]
