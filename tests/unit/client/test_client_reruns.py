"""Re-running, suspending and resuming through the client: the run ``rerun`` requests
(one past every run requested or observed), its refusals (nothing is sent), its
resourceVersion precondition and retries on conflict, the ``spec.suspend`` patches,
and ``wait`` not answering for an earlier run once a rerun is requested."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_fakes import NAMESPACE, FakeApi, event, job_object, write_kubeconfig

from shiftboss import (
    AsyncClient,
    Client,
    JobCannotRunAgain,
    JobNotFinished,
    JobNotFound,
    RequestFailed,
    RerunRefused,
)
from shiftboss.api.job import RUN_GENERATION_ANNOTATION, Job
from shiftboss.client.aio import RERUN_TRIES
from shiftboss.client.runs import annotated_run, finished, next_run, requested_run

ANNOTATION = RUN_GENERATION_ANNOTATION


@dataclass
class RerunApi(FakeApi):
    """Merge patches of metadata too, honouring a ``metadata.resourceVersion``
    precondition; ``races``: how many patches find the Job changed since it was read."""

    races: int = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method != "PATCH":
            return await super().handle(request)
        self.requests.append(request)
        name = request.url.path.rsplit("/", 1)[-1]
        if name not in self.jobs:
            return await super().handle(request)
        obj, body = self.jobs[name], json.loads(request.content)
        meta = body.get("metadata", {})
        if self.races:
            self.races -= 1
            self._bump(obj)  # someone else wrote it in between
        if (
            "resourceVersion" in meta
            and meta["resourceVersion"] != obj["metadata"]["resourceVersion"]
        ):
            return httpx.Response(409, json={"kind": "Status", "code": 409, "reason": "Conflict",
                                             "message": "the object has been modified"})  # fmt: skip
        obj["metadata"].setdefault("annotations", {}).update(meta.get("annotations", {}))
        obj["spec"].update(body.get("spec", {}))
        self._bump(obj)
        return httpx.Response(200, json=obj)

    def _bump(self, obj: dict[str, Any]) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)


def finished_job(
    phase: str = "Succeeded",
    *,
    spec_run: int | None = None,
    annotation: str | None = None,
    status_run: int | None = None,
    **status: Any,
) -> dict[str, Any]:
    obj = job_object("j1", 10, phase, **status)
    if spec_run is not None:
        obj["spec"]["runGeneration"] = spec_run
    if annotation is not None:
        obj["metadata"]["annotations"] = {ANNOTATION: annotation}
    if status_run is not None:
        obj["status"]["runGeneration"] = status_run
    return obj


def model(obj: dict[str, Any]) -> Job:
    return Job.model_validate(obj)


@pytest.fixture
def api() -> RerunApi:
    return RerunApi()


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", {"main": NAMESPACE})


@pytest.fixture
async def sb(api: RerunApi, kubeconfig: Path) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(kubeconfig=kubeconfig, transport=api.transport()) as client:
        yield client


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shiftboss.kube.informer.Backoff.initial", 0.01)


# -- the arithmetic -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec_run", "annotation", "status_run", "requested", "following"),
    [
        (None, None, None, 0, 1),  # never re-run
        (None, None, 0, 0, 1),
        (None, "1", 1, 1, 2),  # re-run once by the CLI
        (3, "1", 3, 3, 4),  # spec raised by GitOps past the annotation
        (None, "5", 5, 5, 6),
        (2, "7", 7, 7, 8),  # the annotation past spec
        (None, None, 4, 0, 5),  # a status ahead of both (spec lowered since): still past it
        (None, "x1", 0, 0, 1),  # not a decimal integer: ignored
        (None, "-3", 0, 0, 1),
        (None, " 2 ", 2, 0, 3),  # as the operator reads it: not a number, ignored
        (None, "1000001", 0, 0, 1),  # past spec.runGeneration's maximum: ignored
    ],
)
def test_rerun_asks_for_one_past_every_run_requested_or_observed(
    spec_run: int | None, annotation: str | None, status_run: int | None, requested: int,
    following: int,
) -> None:  # fmt: skip
    job = model(finished_job(spec_run=spec_run, annotation=annotation, status_run=status_run))
    assert requested_run(job) == requested
    assert next_run(job) == following


def test_a_job_is_finished_only_when_it_ended_the_run_it_requests() -> None:
    assert finished(model(finished_job("Succeeded", status_run=1, annotation="1")))
    # A cancelled Job never runs again: a rerun asked for does not keep a wait waiting.
    cancelled = model(finished_job("Cancelled", status_run=0, annotation="3"))
    cancelled.spec.cancel = True
    assert finished(cancelled)
    assert finished(model(finished_job("Failed")))
    assert not finished(model(finished_job("Succeeded", status_run=0, annotation="1")))
    assert not finished(model(finished_job("Cancelled", status_run=0, spec_run=1)))
    assert not finished(model(finished_job("Running", status_run=1, annotation="1")))
    assert not finished(model(finished_job("Suspended")))
    assert not finished(model(job_object("j1", 10)))  # no status yet
    assert annotated_run(model(finished_job(annotation="12"))) == 12
    assert annotated_run(model(finished_job(annotation="١٢"))) == 0  # decimal, not ASCII


# -- rerun ----------------------------------------------------------------------------------


async def test_rerun_raises_the_annotation_on_the_version_read(
    api: RerunApi, sb: AsyncClient
) -> None:
    api.add(finished_job("Failed", spec_run=1, status_run=1, annotation="0"))
    job = await sb.rerun("j1")
    [patch] = api.sent("PATCH")
    assert json.loads(patch.content) == {
        "metadata": {"resourceVersion": "10", "annotations": {ANNOTATION: "2"}}
    }
    assert "spec" not in json.loads(patch.content)  # GitOps-safe: spec untouched
    assert job.metadata["annotations"][ANNOTATION] == "2"
    assert not finished(job)  # a wait on it waits for run 2


@pytest.mark.parametrize("phase", ["Pending", "Queued", "Running", "Retrying", "Suspended"])
async def test_rerun_refuses_a_job_that_has_not_finished(
    api: RerunApi, sb: AsyncClient, phase: str
) -> None:
    api.add(finished_job(phase))
    with pytest.raises(
        JobNotFinished, match=f"job j1 in namespace {NAMESPACE} has not finished"
    ) as refused:
        await sb.rerun("j1")  # fmt: skip
    assert f"(phase {phase}): only a finished job can run again" in str(refused.value)
    assert refused.value.phase == phase
    assert api.sent("PATCH") == []


async def test_rerun_refuses_a_job_whose_requested_run_has_not_finished(
    api: RerunApi, sb: AsyncClient
) -> None:
    api.add(finished_job("Succeeded", status_run=0, annotation="1"))
    with pytest.raises(JobNotFinished, match=r"already has run 1 requested.*: wait for it"):
        await sb.rerun("j1")
    assert api.sent("PATCH") == []


@pytest.mark.parametrize("phase", ["Cancelled", "Running", "Succeeded"])
async def test_rerun_refuses_a_cancelled_job_for_good(
    api: RerunApi, sb: AsyncClient, phase: str
) -> None:
    obj = finished_job(phase)
    obj["spec"]["cancel"] = True
    api.add(obj)
    with pytest.raises(JobCannotRunAgain) as refused:
        await sb.rerun("j1")
    assert str(refused.value) == (
        f"job j1 in namespace {NAMESPACE} was cancelled (spec.cancel is true) and cannot "
        "run again: create a new Job"
    )
    assert isinstance(refused.value, RerunRefused)
    assert api.sent("PATCH") == []


async def test_rerun_decides_again_on_a_fresh_read_when_the_job_changed(
    api: RerunApi, sb: AsyncClient
) -> None:
    api.add(finished_job("Succeeded", status_run=0))
    api.races = 2
    job = await sb.rerun("j1")
    patches = [json.loads(p.content)["metadata"] for p in api.sent("PATCH")]
    assert [p["resourceVersion"] for p in patches] == ["10", "101", "102"]  # each freshly read
    assert len(api.sent("GET")) == 3
    assert job.metadata["annotations"][ANNOTATION] == "1"


async def test_rerun_gives_up_when_the_job_keeps_changing(api: RerunApi, sb: AsyncClient) -> None:
    api.add(finished_job("Succeeded"))
    api.races = RERUN_TRIES
    with pytest.raises(RequestFailed, match="cannot patch job j1") as failed:
        await sb.rerun("j1")
    assert failed.value.status == 409
    assert len(api.sent("PATCH")) == RERUN_TRIES


async def test_rerun_suspend_and_resume_name_a_missing_job(sb: AsyncClient) -> None:
    for verb in (sb.rerun, sb.suspend, sb.resume):
        with pytest.raises(JobNotFound, match=f"job nope not found in namespace {NAMESPACE}"):
            await verb("nope")


# -- suspend, resume ------------------------------------------------------------------------


async def test_suspend_and_resume_merge_patch_spec_suspend(api: RerunApi, sb: AsyncClient) -> None:
    api.add(finished_job("Queued"))
    assert (await sb.suspend("j1")).spec.suspend
    assert not (await sb.resume("j1")).spec.suspend
    bodies = [json.loads(p.content) for p in api.sent("PATCH")]
    assert bodies == [{"spec": {"suspend": True}}, {"spec": {"suspend": False}}]


# -- wait after a rerun ---------------------------------------------------------------------


def run_one(phase: str, version: int, **status: Any) -> dict[str, Any]:
    return finished_job(phase, annotation="1", status_run=1, **status) | {
        "metadata": {
            "name": "j1",
            "namespace": NAMESPACE,
            "resourceVersion": str(version),
            "annotations": {ANNOTATION: "1"},
        }
    }


async def test_wait_after_a_rerun_waits_for_the_new_run(api: RerunApi, sb: AsyncClient) -> None:
    api.add(finished_job("Succeeded", status_run=0, result=5))
    job = await sb.rerun("j1")
    api.watches = [
        [event("MODIFIED", run_one("Queued", 20)), event("MODIFIED", run_one("Succeeded", 21, result=7))]
    ]  # fmt: skip
    assert await sb.wait(job, timeout=5) == 7


async def test_wait_reads_a_finished_copy_again_as_it_may_predate_a_rerun(
    api: RerunApi, sb: AsyncClient
) -> None:
    stale = model(finished_job("Succeeded", result=5))  # read before the rerun
    api.add(finished_job("Succeeded", status_run=0, annotation="1", result=5))
    api.watches = [[event("MODIFIED", run_one("Succeeded", 21, result=7))]]
    assert await sb.wait(stale, timeout=5) == 7
    [read] = api.sent("GET")
    assert read.url.path.endswith("/j1")


def test_the_blocking_client_reruns_suspends_and_resumes(api: RerunApi, kubeconfig: Path) -> None:
    api.add(finished_job("Succeeded"))
    with Client(kubeconfig=kubeconfig, transport=api.transport()) as sb:
        assert sb.rerun("j1").metadata["annotations"][ANNOTATION] == "1"
        assert sb.suspend("j1").spec.suspend
        assert not sb.resume("j1").spec.suspend
        with pytest.raises(JobNotFinished):
            sb.rerun("j1")


async def test_a_job_can_be_submitted_suspended(api: RerunApi, sb: AsyncClient) -> None:
    job = await sb.submit("demo", "add", {"a": 1}, suspend=True)
    assert job.spec.suspend
    [create] = api.sent("POST")
    assert json.loads(create.content)["spec"]["suspend"] is True
