"""``rerun``, ``suspend``, ``resume`` and ``timeline``: their arguments (refused before
any request), the timeline and earlier-run tables from a status, their ``-o`` documents,
and what each prints and exits with against a fake API server."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rich.console import Console

from shiftboss.api.job import RUN_GENERATION_ANNOTATION, Job
from shiftboss.cli import main
from shiftboss.client import AsyncClient, JobCannotRunAgain, JobNotFinished
from shiftboss.commands.common import Exit, exit_code
from shiftboss.commands.progress import ProgressDisplay
from shiftboss.commands.timeline import document, render_table

NAMESPACE = "ns"
PATH = f"/apis/shiftboss.io/v1alpha1/namespaces/{NAMESPACE}/jobs/"

TIMELINE = [
    {"from": None, "to": "Queued", "reason": "Enqueued", "attempt": 0,
     "time": "2025-01-01T12:00:00Z"},
    {"from": "Queued", "to": "Running", "reason": "Claimed", "attempt": 1, "worker": "demo-a1",
     "time": "2025-01-01T12:00:01Z", "message": "attempt 1 running on demo-a1"},
    {"from": "Running", "to": "Retrying", "reason": "LeaseExpired", "attempt": 1,
     "worker": "demo-a1", "time": "2025-01-01T12:00:31.250000Z"},
    {"from": "Retrying", "to": "Running", "reason": "Claimed", "attempt": 2, "worker": "demo-b2",
     "time": "2025-01-01T12:00:40Z"},
    {"from": "Running", "to": "Succeeded", "reason": "Completed", "attempt": 2,
     "worker": "demo-b2", "time": "2025-01-01T12:00:42Z", "message": "succeeded on attempt 2"},
]  # fmt: skip
RUNS = [
    {"runGeneration": 0, "phase": "Failed", "attempts": 3, "startTime": "2025-01-01T11:00:00Z",
     "completionTime": "2025-01-01T11:00:09Z", "duration": "9s",
     "error": {"type": "FatalError", "message": "boom", "retryable": False}},
    {"runGeneration": 1, "phase": "Succeeded", "attempts": 1,
     "startTime": "2025-01-01T11:30:00Z", "completionTime": "2025-01-01T11:30:02Z",
     "duration": "2s", "message": "succeeded on attempt 1"},
]  # fmt: skip


def job_object(
    name: str = "j1", phase: str | None = "Succeeded", version: int = 10, **status: Any
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": str(version)},
        "spec": {"pool": "demo", "skill": "add", "params": {}},
    }
    if phase:
        obj["status"] = {"phase": phase, "attempt": 1, **status}
    return obj


# -- the timeline's tables and documents -------------------------------------------------


def test_the_timeline_is_a_table_then_one_line_per_earlier_run() -> None:
    job = Job.model_validate(job_object(runGeneration=2, timeline=TIMELINE, runs=RUNS))
    assert render_table(job).splitlines() == [
        "FROM       TO          REASON         ATTEMPT   WORKER    TIME                       MESSAGE",
        "<none>     Queued      Enqueued       0         <none>    2025-01-01T12:00:00Z",
        "Queued     Running     Claimed        1         demo-a1   2025-01-01T12:00:01Z       attempt 1 running on demo-a1",
        "Running    Retrying    LeaseExpired   1         demo-a1   2025-01-01T12:00:31.250Z",
        "Retrying   Running     Claimed        2         demo-b2   2025-01-01T12:00:40Z",
        "Running    Succeeded   Completed      2         demo-b2   2025-01-01T12:00:42Z       succeeded on attempt 2",
        "",
        "RUN   PHASE       ATTEMPTS   STARTED                COMPLETED              DURATION   MESSAGE",
        "0     Failed      3          2025-01-01T11:00:00Z   2025-01-01T11:00:09Z   9s         FatalError: boom",
        "1     Succeeded   1          2025-01-01T11:30:00Z   2025-01-01T11:30:02Z   2s         succeeded on attempt 1",
    ]  # fmt: skip


def test_a_job_never_rerun_has_only_the_timeline() -> None:
    job = Job.model_validate(job_object(timeline=TIMELINE[:2]))
    lines = render_table(job).splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["FROM", "TO", "REASON", "ATTEMPT", "WORKER", "TIME", "MESSAGE"]


def test_the_timeline_document_names_fields_as_the_job_does() -> None:
    job = Job.model_validate(job_object(runGeneration=2, timeline=TIMELINE, runs=RUNS))
    doc = document(job)
    assert (doc["name"], doc["runGeneration"], doc["phase"]) == ("j1", 2, "Succeeded")
    assert doc["timeline"][0] == {
        "from": None, "to": "Queued", "reason": "Enqueued", "attempt": 0, "worker": None,
        "time": "2025-01-01T12:00:00Z", "message": None,
    }  # fmt: skip
    assert doc["runs"][0]["error"] == {"type": "FatalError", "message": "boom", "retryable": False}
    assert doc["runs"][1]["runGeneration"] == 1
    json.dumps(doc)  # plain JSON


# -- arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["rerun"],
        ["rerun", "a", "b"],
        ["rerun", "j1", "--wait", "--timeout", "soon"],
        ["rerun", "j1", "-o", "table"],
        ["suspend"],
        ["resume"],
        ["suspend", "j1", "-o", "table"],
        ["timeline"],
        ["timeline", "j1", "-o", "wide"],
        ["timeline", "j1", "j2"],
    ],
)
def test_bad_arguments_exit_2_before_any_request(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == Exit.USAGE
    assert "error:" in capsys.readouterr().err


def test_a_timeout_without_wait_is_refused_before_the_cluster_is_read(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    assert main(["rerun", "j1", "--timeout", "5s"]) == Exit.USAGE
    assert "--timeout limits a wait: add --wait" in capsys.readouterr().err


def test_a_refused_rerun_exits_2() -> None:
    running = Job.model_validate(job_object(phase="Running"))
    assert exit_code(JobNotFinished(running)) == Exit.USAGE
    assert exit_code(JobCannotRunAgain(running)) == Exit.USAGE


# -- against a fake API server -----------------------------------------------------------


class Api:
    """Jobs by name: GET, and merge PATCH of spec and annotations; 404 for others."""

    def __init__(self, *objs: dict[str, Any]) -> None:
        self.jobs = {obj["metadata"]["name"]: obj for obj in objs}
        self.patches: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.removeprefix(PATH)
        if name not in self.jobs:
            return httpx.Response(
                404,
                json={"kind": "Status", "code": 404, "reason": "NotFound",
                      "message": f'jobs.shiftboss.io "{name}" not found'},
            )  # fmt: skip
        obj = self.jobs[name]
        if request.method == "PATCH":
            body = json.loads(request.content)
            self.patches.append(body)
            obj["spec"].update(body.get("spec", {}))
            annotations = body.get("metadata", {}).get("annotations", {})
            obj["metadata"].setdefault("annotations", {}).update(annotations)
        return httpx.Response(200, json=obj)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Api:
    fake = Api(
        job_object("done", "Succeeded", runGeneration=0, timeline=TIMELINE),
        job_object("busy", "Running", worker="demo-a1"),
        job_object("queued", "Queued"),
        job_object("new", None),
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://kube.test"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u",
                                                       "namespace": NAMESPACE}}],
                "current-context": "c",
            }
        )
    )  # fmt: skip
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    transport = httpx.MockTransport(fake.handle)

    async def client(self: Any) -> AsyncClient:
        if self._client is None:
            self._client = AsyncClient(
                self.args.namespace, config=await self.config(), transport=transport
            )
        return self._client

    monkeypatch.setattr("shiftboss.commands.common.Session.client", client)
    return fake


def test_rerun_requests_the_next_run_and_says_which(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rerun", "done"]) == Exit.OK
    assert capsys.readouterr().out == "job.shiftboss.io/done rerun requested (run 1)\n"
    [patch] = api.patches
    assert patch["metadata"]["annotations"] == {RUN_GENERATION_ANNOTATION: "1"}


def test_rerun_of_a_running_job_exits_2_naming_it_and_changes_nothing(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rerun", "busy"]) == Exit.USAGE
    assert capsys.readouterr().err == (
        "shiftboss rerun: job busy in namespace ns has not finished (phase Running): only a "
        "finished job can run again; wait for it, or cancel it and create a new Job\n"
    )
    assert api.patches == []


def test_rerun_of_a_cancelled_job_says_to_create_a_new_one(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    api.jobs["done"]["spec"]["cancel"] = True
    assert main(["rerun", "done", "--wait"]) == Exit.USAGE
    assert "cannot run again: create a new Job" in capsys.readouterr().err
    assert api.patches == []


def test_suspend_goes_on_past_a_missing_job_and_exits_with_its_code(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["suspend", "queued", "nope", "busy"]) == Exit.API
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "job.shiftboss.io/queued suspended",
        "job.shiftboss.io/busy suspended (attempt 1 runs to its end first)",
    ]
    assert "shiftboss suspend: job nope not found in namespace ns" in err
    assert [p["spec"] for p in api.patches] == [{"suspend": True}, {"suspend": True}]


def test_resume_clears_suspend_and_prints_the_jobs_as_asked(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["resume", "queued", "new", "-o", "name"]) == Exit.OK
    assert capsys.readouterr().out.splitlines() == [
        "job.shiftboss.io/queued",
        "job.shiftboss.io/new",
    ]
    assert [p["spec"] for p in api.patches] == [{"suspend": False}, {"suspend": False}]
    assert main(["resume", "queued", "-o", "json"]) == Exit.OK
    assert json.loads(capsys.readouterr().out)["spec"]["suspend"] is False


def test_timeline_prints_the_table_or_says_there_is_none_yet(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["timeline", "done"]) == Exit.OK
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert rows[1:] == [
        ["<none>", "Queued", "Enqueued"],
        ["Queued", "Running", "Claimed"],
        ["Running", "Retrying", "LeaseExpired"],
        ["Retrying", "Running", "Claimed"],
        ["Running", "Succeeded", "Completed"],
    ]
    assert main(["timeline", "new"]) == Exit.OK
    assert "No transitions recorded yet for job new in namespace ns" in capsys.readouterr().err
    assert main(["timeline", "done", "-o", "yaml"]) == Exit.OK
    assert yaml.safe_load(capsys.readouterr().out)["timeline"][1]["reason"] == "Claimed"
    assert main(["timeline", "nope"]) == Exit.API
    assert "job nope not found in namespace ns" in capsys.readouterr().err


def test_the_progress_of_a_rerun_does_not_show_the_earlier_runs_end() -> None:
    out = io.StringIO()
    earlier = job_object(runGeneration=0, message="succeeded on attempt 1")
    earlier["metadata"]["annotations"] = {RUN_GENERATION_ANNOTATION: "1"}
    running = job_object(phase="Running", runGeneration=1, progress={"percent": 20})
    running["metadata"]["annotations"] = {RUN_GENERATION_ANNOTATION: "1"}
    with ProgressDisplay(Console(file=out, force_terminal=False, width=200), "j1") as display:
        display.show(Job.model_validate(earlier))
        display.show(Job.model_validate(running))
    assert out.getvalue().splitlines() == ["j1 Pending: run 1 requested (0%)", "j1 Running (20%)"]
