"""Aging on the real control plane (docs/scheduling.md): an operator run with
``--aging-seconds-per-level 1`` and a pool with one slot; a priority-0 job is submitted
behind a backlog of priority-10 jobs, and a stream of priority-10 jobs keeps the queue
from ever emptying.  Without aging the low job would wait for the stream to stop.

The documented order is exact, so the test checks it exactly, from the Jobs' own
timestamps: the jobs that start before the low one are precisely the priority-10 jobs
created no later than its creation second plus 10 levels times the rate (creation times have
whole seconds: a job created up to 10 s + 1 s later may still go first), including ones
created after it (priority still counts: not first in, first out); every later one goes
after it, though some were already waiting when it started (it would have starved)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import apply, job_manifest, pool_manifest

from shiftboss.jobs.store import JOBS
from shiftboss.kube.client import KubeClient
from shiftboss.testing.operator import OperatorProcess

RATE = 1.0  # seconds per level: the operator's --aging-seconds-per-level
LEVELS = 10  # priority 10 against priority 0
RUN_SECONDS = 0.2  # each job's sleep: the worker runs a few jobs a second
BACKLOG = 5  # priority-10 jobs queued before the low one arrives
KEEP_WAITING = 4  # the stream tops the not-yet-started priority-10 jobs up to this
POLL_SECONDS = 0.2
MAX_POLLS = 200  # 40 s of stream at most; the low job starts after about 12 s
MAX_HIGH_JOBS = 300
#: From the last job ahead of it ending to the low one starting: one claim, one write.
NEXT_DISPATCH_SECONDS = 1.5


@pytest.fixture
def aging_operator(cluster, namespace, tmp_path) -> Iterator[OperatorProcess]:
    log = tmp_path / "operator.log"
    extra = ["--aging-seconds-per-level", str(RATE)]
    with OperatorProcess(cluster.env(), log, namespaces=[namespace], extra_args=extra) as op:
        yield op
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-5000:]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _started(job: dict[str, Any]) -> datetime | None:
    start = job.get("status", {}).get("startTime")
    return _time(start) if start else None


async def test_a_low_priority_job_runs_within_the_bound_under_a_stream_of_high_ones(
    cluster, namespace, aging_operator, kube: KubeClient
):
    apply(cluster, namespace, pool_manifest("demo", replicas=1, concurrency=1))
    path = JOBS.path(namespace)

    async def submit(name: str, priority: int, seconds: float = RUN_SECONDS) -> None:
        job = job_manifest(name, "sleep", {"seconds": seconds}, priority=priority)
        await kube.request("POST", path, body=job)

    async def jobs() -> dict[str, dict[str, Any]]:
        items = (await kube.request("GET", path))["items"]
        return {j["metadata"]["name"]: j for j in items}

    # The worker is up and claiming before the race starts.
    await submit("warm-up", 5, 0)
    for _ in range(450):
        if (await jobs())["warm-up"].get("status", {}).get("phase") == "Succeeded":
            break
        await asyncio.sleep(POLL_SECONDS)
    else:
        pytest.fail("the warm-up job did not succeed within 90 s")

    high = 0
    for _ in range(MAX_POLLS):
        current = await jobs()
        if "low" in current and _started(current["low"]):
            break
        waiting = [j for n, j in current.items() if n.startswith("high-") and not _started(j)]
        for _ in range(max(0, KEEP_WAITING - len(waiting))):
            assert high < MAX_HIGH_JOBS, "the low job waited past the stream's budget"
            await submit(f"high-{high:03d}", 10)
            high += 1
        if "low" not in current and high >= BACKLOG:
            await submit("low", 0)
        await asyncio.sleep(POLL_SECONDS)
    else:
        pytest.fail(
            f"the priority-0 job did not start within {MAX_POLLS * POLL_SECONDS:.0f} s "
            f"of priority-10 jobs ({high} submitted): aging did not lift it"
        )

    final = await jobs()
    low = final["low"]
    low_created = _time(low["metadata"]["creationTimestamp"])
    low_start = _started(low)
    assert low_start is not None
    # A priority-10 job goes first iff its virtual time (creation - 10 levels * rate) is
    # not later than the low one's (ties go to the higher priority).
    cutoff = low_created + timedelta(seconds=LEVELS * RATE)
    highs = {n: j for n, j in final.items() if n.startswith("high-")}
    created = {n: _time(j["metadata"]["creationTimestamp"]) for n, j in highs.items()}
    ahead = {n for n in highs if created[n] <= cutoff}
    went_first = {n for n, j in highs.items() if (s := _started(j)) and s < low_start}
    assert went_first == ahead, {
        "went first, created after the cutoff": sorted(went_first - ahead),
        "created by the cutoff, went after": sorted(ahead - went_first),
    }

    # Priority still counts: jobs created seconds after the low one went before it.
    later_but_ahead = [n for n in ahead if created[n] > low_created]
    assert len(later_but_ahead) >= KEEP_WAITING, later_but_ahead
    # The queue never ran dry: priority-10 jobs were waiting when the low one started,
    # and it went before them (with strict priority it would have waited for them all).
    passed = [n for n in highs if n not in ahead and created[n] < low_start]
    assert passed, "no priority-10 job was waiting when the low one started"

    # The bound in time: it started as soon as the last job ahead of it ended ...
    ends = [_time(highs[n]["status"]["attempts"][-1]["endTime"]) for n in ahead]
    last_end = max(ends)
    assert timedelta(0) <= low_start - last_end <= timedelta(seconds=NEXT_DISPATCH_SECONDS)
    # ... which is the 10 levels (plus the second the timestamps drop) and the time the
    # worker needed for the jobs still queued then: the stream keeps KEEP_WAITING waiting,
    # and one may be running; each takes at most the longest start-to-start cycle seen.
    starts = sorted(s for n in ahead if (s := _started(highs[n])))
    cycle = max(b - a for a, b in itertools.pairwise(starts))
    bound = timedelta(seconds=LEVELS * RATE + 1) + (KEEP_WAITING + 1) * cycle
    waited = low_start - low_created
    assert waited <= bound + timedelta(seconds=NEXT_DISPATCH_SECONDS), (waited, bound)
    # It did wait its 10 levels (the last job ahead was created 10 s after it, or later).
    assert waited >= timedelta(seconds=LEVELS * RATE - 1), waited
