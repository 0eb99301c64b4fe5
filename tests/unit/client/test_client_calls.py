"""The clients' requests against a fake API server: what submit, get, cancel and list
send, how wait follows a Job's watch (resumed, re-read after 410 or a broken stream),
its deadline, and the blocking Client, also from inside a running event loop."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from pathlib import Path
from unittest import mock

import pytest
from client_fakes import JOBS_PATH, NAMESPACE, FakeApi, event, job_object, write_kubeconfig

from shiftboss import AsyncClient, Client, JobCancelled, JobFailed, JobNotFound, WaitTimeout
from shiftboss.client import PermissionDenied


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", {"main": NAMESPACE, "other": "elsewhere"})


@pytest.fixture
async def sb(api: FakeApi, kubeconfig: Path) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(kubeconfig=kubeconfig, transport=api.transport()) as client:
        yield client


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shiftboss.kube.informer.Backoff.initial", 0.01)


# -- submit, get, cancel, list ------------------------------------------------------------


async def test_submit_creates_the_job_in_the_contexts_namespace(
    api: FakeApi, sb: AsyncClient
) -> None:
    job = await sb.submit("demo", "add", {"a": 2, "b": 3})
    assert (job.name, job.namespace, sb.namespace) == ("add-x7k2p", NAMESPACE, NAMESPACE)
    [create] = api.sent("POST")
    assert create.url.path == JOBS_PATH
    assert json.loads(create.content)["spec"] == {
        "pool": "demo",
        "skill": "add",
        "params": {"a": 2, "b": 3},
    }


async def test_the_context_chooses_the_namespace_unless_one_is_given(
    api: FakeApi, kubeconfig: Path
) -> None:
    async with AsyncClient(kubeconfig=kubeconfig, context="other") as other:
        assert other.namespace == "elsewhere"
    async with AsyncClient("mine", kubeconfig=kubeconfig, context="other") as mine:
        assert mine.namespace == "mine"


async def test_get_and_cancel_name_a_missing_job_and_its_namespace(sb: AsyncClient) -> None:
    with pytest.raises(JobNotFound, match="job nope not found in namespace team-a"):
        await sb.get("nope")
    with pytest.raises(JobNotFound, match="job nope not found in namespace team-a"):
        await sb.cancel("nope")


async def test_cancel_merge_patches_spec_cancel(api: FakeApi, sb: AsyncClient) -> None:
    api.add(job_object("j1", 10, "Running"))
    job = await sb.cancel("j1")
    assert job.spec.cancel
    [patch] = api.sent("PATCH")
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert json.loads(patch.content) == {"spec": {"cancel": True}}


async def test_a_refusal_by_rbac_names_the_verb(api: FakeApi, sb: AsyncClient) -> None:
    api.refusals.append(403)
    with pytest.raises(PermissionDenied, match=r"verb 'create' on jobs\.shiftboss\.io"):
        await sb.submit("demo", "add")


async def test_list_selects_by_pool_phase_and_labels(api: FakeApi, sb: AsyncClient) -> None:
    api.add(job_object("j1", 10, "Running"))
    api.add(job_object("j2", 11))
    jobs = await sb.list(pool="demo", phase="Running", labels={"team": "a"})
    assert [j.name for j in jobs] == [
        "j1",
        "j2",
    ]  # the fake does not filter; the query is what counts
    [request] = api.sent("GET")
    assert request.url.params["fieldSelector"] == "spec.pool=demo,status.phase=Running"
    assert request.url.params["labelSelector"] == "team=a"


# -- wait --------------------------------------------------------------------------------


async def test_wait_watches_the_job_from_its_version_until_it_finishes(
    api: FakeApi, sb: AsyncClient
) -> None:
    api.add(job_object("j1", 10, "Running"))
    api.watches.append(
        [
            event("MODIFIED", job_object("j1", 11, "Running")),
            event("BOOKMARK", {"metadata": {"resourceVersion": "12"}}),
            event("MODIFIED", job_object("j1", 13, "Succeeded", result=5)),
        ]
    )
    assert await sb.wait("j1", timeout=5) == 5
    [watch] = api.sent("GET", watch=True)
    assert watch.url.params["resourceVersion"] == "10"
    assert watch.url.params["fieldSelector"] == "metadata.name=j1"


async def test_wait_resumes_an_ended_watch_from_the_last_version_seen(
    api: FakeApi, sb: AsyncClient
) -> None:
    api.add(job_object("j1", 10, "Queued"))
    api.watches += [
        [event("MODIFIED", job_object("j1", 11, "Running"))],
        [event("BOOKMARK", {"metadata": {"resourceVersion": "15"}})],
        [event("MODIFIED", job_object("j1", 16, "Succeeded", result={"ok": True}))],
    ]
    assert await sb.wait("j1") == {"ok": True}
    versions = [r.url.params["resourceVersion"] for r in api.sent("GET", watch=True)]
    assert versions == ["10", "11", "15"]
    assert len(api.sent("GET")) == 1  # no re-read needed


@pytest.mark.parametrize(
    "expired",
    [
        [event("ERROR", {"kind": "Status", "code": 410, "reason": "Expired", "message": "old"})],
        410,
    ],
    ids=["error-event", "status-code"],
)
async def test_wait_reads_the_job_again_when_its_version_is_too_old(
    api: FakeApi, sb: AsyncClient, expired: list[dict[str, object]] | int
) -> None:
    api.add(job_object("j1", 10, "Running"))
    job = await sb.get("j1")
    api.watches.append(expired)
    # Finished while the watch was expired: only the re-read can see it.
    api.jobs["j1"] = job_object("j1", 20, "Succeeded", result=5)
    assert await sb.wait(job, timeout=5) == 5
    assert len(api.sent("GET")) == 2


@pytest.mark.parametrize("broken", [503, []], ids=["server-error", "empty-stream"])
async def test_wait_survives_a_broken_watch(
    api: FakeApi, sb: AsyncClient, broken: list[dict[str, object]] | int
) -> None:
    api.add(job_object("j1", 10, "Running"))
    api.watches += [broken, [event("MODIFIED", job_object("j1", 30, "Succeeded", result=1))]]
    assert await sb.wait("j1", timeout=5) == 1
    assert [r.url.params["resourceVersion"] for r in api.sent("GET", watch=True)] == ["10", "10"]
    assert len(api.sent("GET")) == 2  # read again after a pause: changes may have been missed


async def test_wait_raises_what_ended_the_job(api: FakeApi, sb: AsyncClient) -> None:
    error = {"type": "FatalError", "message": "boom", "retryable": False}
    api.add(job_object("bad", 10, "Failed", error=error))
    with pytest.raises(JobFailed) as failed:
        await sb.wait("bad")
    assert (failed.value.error_type, failed.value.message) == ("FatalError", "boom")
    api.add(job_object("stopped", 10, "Cancelled", message="cancelled by spec.cancel"))
    with pytest.raises(JobCancelled, match=r"cancelled by spec\.cancel"):
        await sb.wait("stopped")


async def test_wait_names_a_job_deleted_while_waited_for(api: FakeApi, sb: AsyncClient) -> None:
    api.add(job_object("j1", 10, "Running"))
    api.watches.append([event("DELETED", job_object("j1", 11, "Running"))])
    with pytest.raises(JobNotFound, match="job j1 in namespace team-a was deleted"):
        await sb.wait("j1")


async def test_the_timeout_is_an_overall_deadline_and_leaves_the_job_alone(
    api: FakeApi, sb: AsyncClient
) -> None:
    api.add(job_object("j1", 10, "Queued"))
    api.watches.append([event("MODIFIED", job_object("j1", 11, "Running"))])
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as timed_out:
        await sb.wait("j1", timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 2
    assert timed_out.value.phase == "Running"  # the latest version seen
    assert "job j1 in namespace team-a did not finish within 0.3s" in str(timed_out.value)
    assert not api.sent("PATCH") and not api.sent("DELETE")


async def test_run_submits_and_waits_for_the_result(api: FakeApi, sb: AsyncClient) -> None:
    api.watches.append([event("MODIFIED", job_object("add-x7k2p", 200, "Succeeded", result=5))])
    assert await sb.run("demo", "add", {"a": 2, "b": 3}, timeout=5) == 5
    [watch] = api.sent("GET", watch=True)
    assert watch.url.params["resourceVersion"] == "101"  # the created Job's


# -- the blocking client -------------------------------------------------------------------


def test_the_blocking_client_runs_the_same_calls(api: FakeApi, kubeconfig: Path) -> None:
    api.watches.append([event("MODIFIED", job_object("add-x7k2p", 200, "Succeeded", result=5))])
    with Client(kubeconfig=kubeconfig, transport=api.transport()) as sb:
        assert sb.run("demo", "add", {"a": 2, "b": 3}) == 5
        assert sb.get("add-x7k2p").name == "add-x7k2p"
        with pytest.raises(WaitTimeout):
            sb.wait(sb.submit("demo", "sleep", name="s1"), timeout=0.1)
    assert not sb._thread.is_alive()


async def test_the_blocking_client_works_inside_a_running_event_loop(
    api: FakeApi, kubeconfig: Path
) -> None:
    asyncio.get_running_loop()  # as in Jupyter
    api.add(job_object("j1", 10, "Succeeded", result=7))
    sb = Client(kubeconfig=kubeconfig, transport=api.transport())
    try:
        assert sb.wait("j1") == 7
        assert sb.namespace == NAMESPACE
    finally:
        sb.close()
    sb.close()  # closing twice is harmless


def test_an_interrupted_blocking_call_stops_its_work(api: FakeApi, kubeconfig: Path) -> None:
    api.add(job_object("j1", 10, "Running"))
    with Client(kubeconfig=kubeconfig, transport=api.transport()) as sb:
        # Ctrl-C while the caller waits for the call's result:
        interrupted = mock.patch.object(Future, "result", side_effect=KeyboardInterrupt)
        with interrupted, pytest.raises(KeyboardInterrupt):
            sb.wait("j1")

        async def others() -> int:
            await asyncio.sleep(0.1)  # let the cancellation land
            return len(asyncio.all_tasks()) - 1

        assert asyncio.run_coroutine_threadsafe(others(), sb._loop).result() == 0
