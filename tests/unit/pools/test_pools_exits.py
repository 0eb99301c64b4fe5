"""A worker pod's exit reason, from its termination message to the condition's text."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shiftboss.pools.exits import MAX_CAUSE_CHARS, WorkerExit, last_error_line, worker_exit
from shiftboss.pools.podview import PodView

TRACEBACK = """\
2024-05-01 10:00:00 INFO worker starting
Traceback (most recent call last):
  File "/app/app.py", line 1, in <module>
    import nosuchmodule
ModuleNotFoundError: No module named 'nosuchmodule'
"""


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (TRACEBACK, "ModuleNotFoundError: No module named 'nosuchmodule'"),
        # The runtime's own one-line error, after the log lines before it.
        (
            "INFO starting\nshiftboss-worker: --app 'x:worker': no module named 'x' (searched /app)\n",
            "shiftboss-worker: --app 'x:worker': no module named 'x' (searched /app)",
        ),
        # An error followed by harmless lines: the error, not the last line.
        (
            "ERROR cannot reach the operator: connection refused\nINFO shutting down\n\n",
            "ERROR cannot reach the operator: connection refused",
        ),
        # Nothing reads as an error: the last line.
        ("starting\nbye\n", "bye"),
        ("", ""),
        ("\n  \n", ""),
    ],
)
def test_last_error_line(text: str, line: str) -> None:
    assert last_error_line(text) == line


def test_the_last_error_line_of_a_go_panic_is_its_panic_line() -> None:
    text = "panic: runtime error: index out of range [3]\n\ngoroutine 1 [running]:\nmain.main()\n"
    # "goroutine..." and "main.main()" do not read as errors; the panic line does.
    assert last_error_line(text) == "panic: runtime error: index out of range [3]"


def test_json_log_entries_count_by_their_message_or_exception() -> None:
    entries = [
        {
            "level": "ERROR",
            "message": "skill crashed",
            "exception": "Traceback...\nValueError: bad width",
        },
        {"level": "INFO", "message": "draining"},
    ]
    text = "\n".join(json.dumps(e) for e in entries)
    assert last_error_line(text) == "ValueError: bad width"
    assert last_error_line(json.dumps({"level": "ERROR", "message": "fatal: no token"})) == (
        "fatal: no token"
    )
    assert last_error_line("{not json: error here}") == "{not json: error here}"


def test_a_long_line_is_cut() -> None:
    line = last_error_line("Error: " + "x" * 1000)
    assert len(line) == MAX_CAUSE_CHARS
    assert line.endswith("...")


def finished_pod(
    terminated: dict[str, Any] | None, *, status: dict[str, Any] | None = None
) -> dict[str, Any]:
    statuses = []
    if terminated is not None:
        statuses = [
            {"name": "sidecar", "state": {"running": {}}},
            {"name": "worker", "state": {"terminated": terminated}},
        ]
    return {
        "metadata": {"name": "demo-abc-x", "labels": {}},
        "status": {"phase": "Failed", "containerStatuses": statuses, **(status or {})},
    }


def test_worker_exit_reads_the_worker_containers_termination_message() -> None:
    pod = finished_pod(
        {
            "exitCode": 1,
            "reason": "Error",
            "message": TRACEBACK,
            "finishedAt": "2024-05-01T10:00:03Z",
        }
    )
    found = worker_exit(pod)
    assert found == WorkerExit(
        code=1,
        cause="ModuleNotFoundError: No module named 'nosuchmodule'",
        finished_at=datetime(2024, 5, 1, 10, 0, 3, tzinfo=UTC).timestamp(),
    )
    assert found.describe() == (
        "worker exited with code 1: ModuleNotFoundError: No module named 'nosuchmodule'"
    )


@pytest.mark.parametrize(
    ("pod", "description"),
    [
        (finished_pod({"exitCode": 0, "reason": "Completed"}), "worker exited with code 0"),
        (
            finished_pod({"exitCode": 137, "reason": "OOMKilled"}),
            "worker exited with code 137: OOMKilled",
        ),
        (
            finished_pod(
                None, status={"reason": "Evicted", "message": "The node was low on memory."}
            ),
            "worker pod failed: Evicted: The node was low on memory.",
        ),
        (finished_pod(None), "worker pod failed"),
    ],
)
def test_worker_exit_without_a_message(pod: dict[str, Any], description: str) -> None:
    assert worker_exit(pod).describe() == description


def test_a_pod_view_carries_the_exit_of_a_finished_pod_only() -> None:
    pod = finished_pod({"exitCode": 2, "reason": "Error", "message": "boom: error\n"})
    assert PodView.from_pod(pod, set()).worker_exit == WorkerExit(2, "boom: error", None)
    pod["status"]["phase"] = "Running"
    assert PodView.from_pod(pod, set()).worker_exit is None


def test_a_pod_view_knows_since_when_it_is_ready() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"}
            ],
        },
    }
    view = PodView.from_pod(pod, set())
    assert view.ready_since == datetime(2024, 5, 1, 10, 0, tzinfo=UTC).timestamp()
    pod["status"]["conditions"][0]["status"] = "False"
    assert PodView.from_pod(pod, set()).ready_since is None
