"""A restart with 2,000 Jobs present: the operator lists them in pages, is back to
dispatching within seconds, and does not greet the API server with a burst of writes.

The Jobs are created while no operator runs (so the first operator's start is a restart
with them present, too); the second operator is started right after the first was
SIGKILLed. A worker spoken by hand (``fakeworker.Api``) registers and claims as soon as
the new operator answers, polling every 50 ms, so the time measured is the operator's,
not a real worker's reconnect backoff.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from conftest import apply, job_manifest, pool_manifest
from fakeworker import Api, create_token, register_body

from shiftboss.bench.apiserver_metrics import Counts, RequestKey, diff, parse
from shiftboss.jobs.store import JOBS
from shiftboss.kube.client import ApiError, KubeClient
from shiftboss.kube.config import KubeConfig
from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until

pytestmark = pytest.mark.usefixtures("local_cluster_only")

JOB_COUNT = 2000
PAGE_SIZE = 500  # the informer's default
CREATE_CONCURRENCY = 24
SKILLS = {"echo": {"type": "object"}}
LISTS = RequestKey("LIST", "shiftboss.io", "jobs", "")
STATUS_WRITES = RequestKey("PATCH", "shiftboss.io", "jobs", "status")
#: The dispatcher writes ``Queued`` only for jobs something other than their turn holds
#: (no worker offers their skill yet), from a budget of 50 at once, then 20 per second.
QUEUED_BURST = 50
REBUILT = re.compile(r"rebuilt state: \d+ pools, (\d+) jobs \(listed in ([\d.]+) s, (\d+) pages\)")


async def create_jobs(kubeconfig: Path, namespace: str, count: int) -> None:
    async with KubeClient(KubeConfig.from_file(kubeconfig)) as kube:
        path = JOBS.path(namespace)
        names = iter(range(count))

        async def creator() -> None:
            for i in names:
                for _ in range(5):  # a 429 or a hiccup of the busy API server
                    try:
                        await kube.create(path, job_manifest(f"j-{i:05}", "echo", {"i": i}))
                        break
                    except ApiError as exc:
                        if exc.already_exists:
                            break
                        await asyncio.sleep(0.5)
                else:
                    raise AssertionError(f"could not create job j-{i:05}")

        await asyncio.gather(*(creator() for _ in range(CREATE_CONCURRENCY)))


def scrape(cluster) -> Counts:
    return parse(cluster.kubectl("get", "--raw", "/metrics").stdout)


def rebuilt(log: Path) -> tuple[int, float, int]:
    """Jobs listed, seconds taken and pages, from the operator's log line."""
    match = wait_until(
        lambda: REBUILT.search(log.read_text(errors="replace")),
        timeout=30,
        interval=0.1,
        what=f"the 'rebuilt state' line in {log.name}",
    )
    return int(match[1]), float(match[2]), int(match[3])


def first_assignment(api: Api, deadline: float) -> tuple[str, str]:
    """Register as soon as the operator answers, then claim: the first job dispatched."""

    def registered() -> bool:
        return api.post("/v1/workers/register", register_body("demo", "fake-1", SKILLS)).is_success

    wait_until(registered, timeout=deadline - time.monotonic(), interval=0.05, what="register")
    while time.monotonic() < deadline:
        assignments = api.claim("fake-1", wait=5)
        if assignments:
            return assignments[0].job.name, assignments[0].attempt_id
    raise AssertionError("no job was dispatched")


def clean(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-5000:]


def test_a_restart_with_2000_jobs_lists_in_pages_dispatches_soon_and_writes_little(
    cluster, namespace, tmp_path
):
    apply(cluster, namespace, pool_manifest("demo", replicas=0))
    started = time.monotonic()
    asyncio.run(create_jobs(cluster.kubeconfig, namespace, JOB_COUNT))
    print(f"\ncreated {JOB_COUNT} jobs in {time.monotonic() - started:.1f} s")

    first_log, second_log = tmp_path / "operator-1.log", tmp_path / "operator-2.log"
    first = OperatorProcess(cluster.env(), first_log, namespaces=[namespace]).start()
    try:
        listed, seconds, pages = rebuilt(first_log)
        print(f"first start: {listed} jobs listed in {seconds:.2f} s, {pages} pages")
        assert listed == JOB_COUNT
    finally:
        first.kill()

    api = Api(f"http://127.0.0.1:{first.port}", create_token(cluster, namespace))
    before = scrape(cluster)
    restarted = time.monotonic()
    second = OperatorProcess(
        cluster.env(), second_log, namespaces=[namespace], port=first.port
    ).start(wait=False)
    try:
        job, attempt = first_assignment(api, deadline=restarted + 30)
        dispatched = time.monotonic() - restarted
        listed, seconds, pages = rebuilt(second_log)
        print(
            f"restart with {JOB_COUNT} jobs: listed in {seconds:.2f} s ({pages} pages), "
            f"first dispatch {dispatched:.2f} s after the restart"
        )
        # (a) Back to dispatching soon: the claim is written (Running) before it is answered.
        assert dispatched < 10, dispatched
        status = cluster.get_json("-n", namespace, "jobs.shiftboss.io", job)["status"]
        assert (status["phase"], status["worker"]) == ("Running", "fake-1"), status
        # (b) Paginated: one LIST per page, and the operator listed the Jobs only once.
        assert listed == JOB_COUNT
        assert pages in (JOB_COUNT // PAGE_SIZE, JOB_COUNT // PAGE_SIZE + 1), pages
        wait_until(lambda: time.monotonic() - restarted >= dispatched + 3, timeout=10)
        moved = diff(before, scrape(cluster))
        # One LIST per page; the controller-manager's own informers (garbage collector,
        # quota) may list Jobs once more in that window: one extra, never a second pass.
        assert pages <= moved[LISTS] <= pages + 1, moved
        # (c) No write burst: the claim's Running write, and at most the burst of the
        # dispatcher's budget for Queued writes of blocked jobs (no worker offered their
        # skill yet); one write per waiting job would be 2,000.
        window = time.monotonic() - restarted
        writes = moved[STATUS_WRITES]
        print(f"status writes in the {window:.1f} s after the restart: {writes}")
        assert writes <= 1 + QUEUED_BURST, writes
        assert api.complete(attempt, {"ok": True}).status_code == 200
    finally:
        second.stop()
        api.close()
    clean(first_log)
    clean(second_log)
