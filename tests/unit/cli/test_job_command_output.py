"""The job commands' output: kubectl-style tables, JSON and YAML documents, ages, the
progress display's plain-line mode, and which worker log lines belong to a job."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest
import yaml
from rich.console import Console

from shiftboss.api.job import Job
from shiftboss.commands.jobs import cancel_outcome
from shiftboss.commands.logs import job_lines, since, workers
from shiftboss.commands.progress import ProgressDisplay
from shiftboss.commands.render import human_duration, render, table

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
UID = "6f1c2a9e-0000-4000-8000-000000000001"
OTHER = "6f1c2a9e-0000-4000-8000-000000000002"


def job(name: str, phase: str | None = None, **status) -> Job:
    return Job.model_validate(
        {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "uid": UID,
                "creationTimestamp": "2025-01-01T11:56:40Z",
            },
            "spec": {"pool": "demo", "skill": "add", "params": {"a": 1}},
            "status": {"phase": phase, **status} if phase else None,
        }
    )


def test_the_table_is_kubectls():
    jobs = [
        job("sum", "Succeeded", attempt=1, message="succeeded", result=5),
        job("waiting"),
        job("resize-abc", "Running", attempt=2, progress={"percent": 50, "message": "halfway"}),
    ]
    assert table(jobs, now=NOW).splitlines() == [
        "NAME         POOL   SKILL   PHASE       ATTEMPTS   AGE     MESSAGE",
        "sum          demo   add     Succeeded   1          3m20s   succeeded",
        "waiting      demo   add     Pending     0          3m20s",
        "resize-abc   demo   add     Running     2          3m20s   50% halfway",
    ]


def test_the_wide_table_adds_priority_worker_and_duration():
    line = table([job("sum", "Succeeded", worker="demo-1", duration="2s")], wide=True, now=NOW)
    header, row = line.splitlines()
    assert header.split() == [
        "NAME", "POOL", "SKILL", "PHASE", "ATTEMPTS", "AGE", "PRIORITY", "WORKER", "DURATION",
        "POSITION", "MESSAGE",
    ]  # fmt: skip
    assert row.split()[6:] == ["5", "demo-1", "2s"]


def test_json_and_yaml_print_the_object_or_a_list():
    done = job("sum", "Succeeded", result=5)
    done.metadata["managedFields"] = [{"manager": "python-httpx"}]
    one = json.loads(render([done], "json", single=True))
    assert "managedFields" not in one["metadata"]
    assert (one["kind"], one["metadata"]["name"], one["status"]["result"]) == ("Job", "sum", 5)
    many = yaml.safe_load(render([job("a"), job("b")], "yaml", single=False))
    assert many["kind"] == "List"
    assert [item["metadata"]["name"] for item in many["items"]] == ["a", "b"]
    assert json.loads(render([], "json", single=False))["items"] == []
    assert render([job("a"), job("b")], "name", single=False) == (
        "job.shiftboss.io/a\njob.shiftboss.io/b"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-0.5, "0s"),
        (45, "45s"),
        (119, "119s"),
        (200, "3m20s"),
        (300, "5m"),
        (3000, "50m"),
        (4 * 3600 + 60 * 5, "4h5m"),
        (20 * 3600, "20h"),
        (3 * 86400 + 3600, "3d1h"),
        (40 * 86400, "40d"),
        (3 * 365 * 86400 + 86400, "3y1d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_ages_as_kubectl_prints_them(seconds, text):
    assert human_duration(seconds) == text


def test_progress_on_a_pipe_is_one_line_per_change():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with ProgressDisplay(console, "sum") as display:
        display.show(job("sum"))
        display.show(job("sum", "Running", progress={"percent": 50, "message": "halfway"}))
        display.show(job("sum", "Running", progress={"percent": 50, "message": "halfway"}))
        display.show(job("sum", "Succeeded", message="succeeded"))
    assert out.getvalue().splitlines() == [
        "sum Pending (0%)",
        "sum Running: halfway (50%)",
        "sum Succeeded: succeeded (100%)",
    ]


def test_progress_on_a_terminal_is_a_live_bar():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with ProgressDisplay(console, "resize-1") as display:
        display.show(job("resize-1", "Running", progress={"percent": 40, "message": "fetching"}))
    screen = out.getvalue()
    assert "resize-1 Running: fetching" in screen
    assert "40%" in screen and "━" in screen


TEXT_LOG = f"""\
2025-01-01 12:00:00,001 INFO worker_runtime.runner [worker=demo-1] registered
2025-01-01 12:00:01,000 INFO worker_runtime.runner [worker=demo-1 job=ns/sum attempt={UID}.1] attempt 1 of sum: running skill add
2025-01-01 12:00:01,500 WARNING worker_runtime.attempt [worker=demo-1 job=ns/sum attempt={UID}.1] failed: RuntimeError: x
Traceback (most recent call last):
  RuntimeError: x
2025-01-01 12:00:02,000 INFO worker_runtime.runner [worker=demo-1 job=ns/other attempt={OTHER}.1] attempt 1 of other: running skill add
  a continuation of another job's record
2025-01-01 12:00:03,000 INFO worker_runtime.runner [worker=demo-1 job=ns/sum attempt={UID}.2] attempt 2 of sum: running skill add
{json.dumps({"level": "INFO", "message": "succeeded", "attempt_id": f"{UID}.2", "job": "ns/sum"})}
{json.dumps({"level": "INFO", "message": "unrelated", "attempt_id": f"{OTHER}.2"})}
{json.dumps({"level": "INFO", "message": "attempt 12 is not attempt 1", "attempt_id": f"{UID}.12"})}
"""


def test_log_lines_are_the_jobs_by_its_uid_with_their_continuations():
    lines = list(job_lines(TEXT_LOG, UID))
    assert [line.split("] ", 1)[1] for line in lines[:2]] == [
        "attempt 1 of sum: running skill add",
        "failed: RuntimeError: x",
    ]
    assert lines[2:4] == ["Traceback (most recent call last):", "  RuntimeError: x"]
    assert lines[4].endswith("attempt 2 of sum: running skill add")
    assert [json.loads(line)["message"] for line in lines[5:]] == [
        "succeeded",
        "attempt 12 is not attempt 1",
    ]
    assert not any("other" in line or "unrelated" in line for line in lines)


def test_log_lines_of_one_attempt():
    first = list(job_lines(TEXT_LOG, UID, attempt=1))
    assert len(first) == 4 and all(f"{UID}.1]" in line for line in first[:2])
    assert [json.loads(line)["message"] for line in job_lines(TEXT_LOG, UID, 12)] == [
        "attempt 12 is not attempt 1"
    ]


def test_the_workers_of_a_job_and_where_their_logs_start():
    ran = job(
        "sum",
        "Running",
        attempt=3,
        worker="demo-b",
        attempts=[
            {"attempt": 1, "worker": "demo-a", "startTime": "2025-01-01T11:57:00Z"},
            {"attempt": 2, "worker": "demo-b", "startTime": "2025-01-01T11:58:00Z"},
            {"attempt": 3, "worker": "demo-b", "startTime": "2025-01-01T11:59:00Z"},
        ],
    )
    assert workers(ran) == {"demo-a": [1], "demo-b": [2, 3]}
    assert workers(ran, attempt=3) == {"demo-b": [3]}
    assert workers(job("waiting")) == {}
    assert since(ran, [2, 3]) == "2025-01-01T11:57:50Z"  # less the clock-skew margin
    assert since(job("waiting"), [1]) is None


def test_cancel_says_what_it_did():
    assert cancel_outcome(job("queued")) == "job.shiftboss.io/queued cancel requested"
    assert cancel_outcome(job("busy", "Running", attempt=1)) == (
        "job.shiftboss.io/busy cancel requested"
    )
    done = job("done", "Succeeded", attempt=1, runGeneration=1)
    assert cancel_outcome(done) == (
        "job.shiftboss.io/done already finished (Succeeded): nothing to cancel"
    )
    # A rerun asked for and not started yet is what the cancel stops.
    done.metadata["annotations"] = {"shiftboss.io/run-generation": "2"}
    assert cancel_outcome(done) == (
        "job.shiftboss.io/done cancel requested: its run 1 already finished (Succeeded), "
        "and the rerun asked for will not start"
    )
