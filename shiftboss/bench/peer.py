"""The built-in peer: the same computation as batch/v1 Jobs, a pod each, run by the
process node on the same control plane, in a namespace no operator serves."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from shiftboss.bench.bursts import Outcome, burst_timeout, last_terminal, outcome
from shiftboss.bench.cluster import PEER_NAMESPACE
from shiftboss.bench.context import Bench
from shiftboss.bench.creator import BATCH_JOBS, Created, create_all
from shiftboss.bench.recorder import TERMINAL, Recorder, batch_phase
from shiftboss.bench.stats import rate


def batch_job(name: str, i: int) -> dict[str, Any]:
    """The ``add`` skill's computation as a pod: one Python process printing ``i + 1``."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "add",
                            "image": "python",
                            "command": [sys.executable, "-c", f"print({i} + 1)"],
                        }
                    ],
                }
            },
        },
    }


@dataclass(frozen=True)
class PeerResult:
    outcome: Outcome
    seconds: float
    jobs_per_second: float
    requests_per_job: dict[str, float]
    other_requests: dict[str, int]


async def batch_burst(bench: Bench, count: int) -> PeerResult:
    """``count`` batch/v1 Jobs created at once; deleted (with their pods) afterwards."""
    path = BATCH_JOBS.path(PEER_NAMESPACE)
    recorder = Recorder(bench.client, path, batch_phase)
    await recorder.start()
    created = Created()
    names = [f"peer-{i}" for i in range(count)]
    try:
        before = await bench.scraper.scrape()
        started = time.monotonic()
        await create_all(bench.client, path, names, batch_job, created, bench.sizes.creators)
        sent = created.succeeded(names)
        await recorder.wait(sent, TERMINAL, burst_timeout(count * 10))
        seconds = last_terminal(recorder, sent) - started
        requests = await bench.requests_since(before)
    finally:
        await recorder.stop()
        await bench.client.delete(path, propagationPolicy="Background")
    return PeerResult(
        outcome=outcome(recorder, created, names),
        seconds=round(seconds, 2),
        jobs_per_second=rate(len(sent), seconds),
        requests_per_job=requests.per(len(sent)),
        other_requests=requests.other,
    )
