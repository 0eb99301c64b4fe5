"""The process node's part of a container's exit: state.terminated and its message."""

from pathlib import Path

import pytest

from shiftboss.testing.node.container import ContainerState
from shiftboss.testing.node.termination import (
    FALLBACK_TO_LOGS,
    exit_code,
    log_tail,
    read_last_bytes,
    terminated_state,
    termination_message,
)

TRACEBACK = (
    b"starting\n"
    b"Traceback (most recent call last):\n"
    b'  File "app.py", line 1, in <module>\n'
    b"ModuleNotFoundError: No module named 'nosuchmodule'\n"
)


@pytest.mark.parametrize(
    ("written", "log", "code", "policy", "expected"),
    [
        # What the program wrote wins, whatever the policy and exit code.
        (b"disk full\n", TRACEBACK, 1, FALLBACK_TO_LOGS, "disk full\n"),
        (b"done: 3 files", b"", 0, "File", "done: 3 files"),
        # Nothing written, failed, FallbackToLogsOnError: the log's tail.
        (b"", TRACEBACK, 1, FALLBACK_TO_LOGS, TRACEBACK.decode()),
        (b"  \n", TRACEBACK, 137, FALLBACK_TO_LOGS, TRACEBACK.decode()),
        # ...but not after a success, and not with the default policy (File).
        (b"", TRACEBACK, 0, FALLBACK_TO_LOGS, ""),
        (b"", TRACEBACK, 1, "File", ""),
        (b"", TRACEBACK, 1, None, ""),
    ],
)
def test_termination_message(written, log, code, policy, expected):
    assert termination_message(written, log, code, policy) == expected


def test_the_message_file_is_cut_to_its_last_4_kib():
    written = b"x" * 5000 + b"the end"
    message = termination_message(written, b"", 1, FALLBACK_TO_LOGS)
    assert len(message) == 4096
    assert message.endswith("the end")


def test_log_tail_keeps_the_last_80_lines():
    log = b"".join(f"line {i}\n".encode() for i in range(200))
    tail = log_tail(log)
    assert tail.splitlines() == [f"line {i}" for i in range(120, 200)]


def test_log_tail_keeps_the_last_2_kib_of_those_lines():
    log = b"".join(f"{i:03d} ".encode() + b"y" * 95 + b"\n" for i in range(50))  # 100 B each
    tail = log_tail(log)
    assert len(tail.encode()) == 2048
    assert tail.endswith("049 " + "y" * 95 + "\n")
    assert "029 " not in tail  # only the last 20 and a half lines fit


def test_log_tail_of_a_log_without_a_final_newline_and_of_bad_utf8():
    assert log_tail(b"a\nb") == "a\nb"
    assert log_tail(b"caf\xc3") == "caf\ufffd"
    assert log_tail(b"") == ""


def test_exit_codes_of_signalled_processes_are_128_plus_the_signal():
    assert exit_code(0) == 0
    assert exit_code(3) == 3
    assert exit_code(-9) == 137
    assert exit_code(-15) == 143


def test_terminated_state():
    state = terminated_state(2, started="t0", finished="t1", container_id="process://7")
    assert state == {
        "exitCode": 2,
        "reason": "Error",
        "startedAt": "t0",
        "finishedAt": "t1",
        "containerID": "process://7",
    }
    ok = terminated_state(0, started="t0", finished="t1", container_id="c", message="bye")
    assert (ok["reason"], ok["message"]) == ("Completed", "bye")
    refused = terminated_state(128, started="", finished="", container_id="", reason="StartError")
    assert refused["reason"] == "StartError"


def test_read_last_bytes_reads_only_after_the_start_offset(tmp_path: Path):
    path = tmp_path / "worker.log"
    path.write_bytes(b"first run\nsecond run\n")
    assert read_last_bytes(path, 100, start=10) == b"second run\n"
    assert read_last_bytes(path, 4, start=10) == b"run\n"
    assert read_last_bytes(path, 100) == b"first run\nsecond run\n"
    assert read_last_bytes(tmp_path / "missing", 100) == b""


def test_a_restart_keeps_the_previous_exit_as_last_state():
    c = ContainerState({"name": "worker"})
    c.exited(1, started="t0", message="boom")
    first = c.state
    c.backing_off(2)
    assert c.last_state == first
    assert c.state["waiting"]["reason"] == "CrashLoopBackOff"
    assert c.restart_count == 1
    assert c.status()["lastState"]["terminated"]["message"] == "boom"
