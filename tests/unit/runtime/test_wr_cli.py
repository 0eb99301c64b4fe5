"""shiftboss-worker: loading the app, the skills command, and a real run end to end."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from wr_fakes import free_port

from worker_runtime.cli import load_app, main
from worker_runtime.errors import ConfigError

APP = """
from worker_runtime import Worker

worker = Worker()
not_a_worker = 42

@worker.skill()
def add(params: dict) -> int:
    '''Add a and b.'''
    return params["a"] + params["b"]
"""


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "wr_cli_app.py").write_text(APP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "wr_cli_app", raising=False)
    return tmp_path


def test_load_app_from_the_current_directory(app_dir: Path) -> None:
    worker = load_app("wr_cli_app:worker")
    assert [s.name for s in worker.skills] == ["add"]
    assert load_app("wr_cli_app") is worker  # the attribute defaults to "worker"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_wr:worker", "no module named 'no_such_module_wr'"),
        ("wr_cli_app:missing", "has no attribute 'missing'"),
        ("wr_cli_app:not_a_worker", "is a int, not a worker_runtime.Worker"),
        ("not a module", "expected 'module:attribute'"),
    ],
)
def test_load_app_errors(app_dir: Path, spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_app(spec)


def test_skills_command_prints_schemas(app_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["skills", "--app", "wr_cli_app:worker"]) == 0
    [spec] = json.loads(capsys.readouterr().out)
    assert spec == {
        "name": "add",
        "description": "Add a and b.",
        "input_schema": {"additionalProperties": True, "type": "object"},
        "output_schema": {"type": "integer"},
    }


def test_config_errors_exit_2_with_one_line(
    app_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("SHIFTBOSS_OPERATOR_URL", "SHIFTBOSS_POOL", "SHIFTBOSS_APP"):
        monkeypatch.delenv(var, raising=False)
    assert main(["run", "--app", "wr_cli_app:worker"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shiftboss-worker: SHIFTBOSS_OPERATOR_URL is not set")
    assert err.count("\n") == 1
    assert main(["run"]) == 2
    assert "pass --app module:attribute or set SHIFTBOSS_APP" in capsys.readouterr().err


class _Operator(BaseHTTPRequestHandler):
    """Just enough of the operator, over real HTTP on loopback, for one job."""

    reports: list[tuple[str, dict]] = []
    handed_out = threading.Event()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        if self.path.endswith("/register"):
            answer = {
                "worker_id": body["worker_id"],
                "heartbeat_interval_seconds": 0.2,
                "lease_seconds": 5,
            }
        elif self.path.endswith("/claim"):
            assignments = []
            if not self.handed_out.is_set():
                self.handed_out.set()
                assignments = [
                    {
                        "attempt_id": "uid.1",
                        "job": {"namespace": "ns", "name": "j", "uid": "uid"},
                        "attempt": 1,
                        "skill": "add",
                        "params": {"a": 2, "b": 3},
                        "lease_seconds": 5,
                    }
                ]
            else:
                time.sleep(min(body["wait_seconds"], 0.5))
            answer = {"assignments": assignments}
        elif self.path.endswith("/heartbeat"):
            answer = {"commands": []}
        else:
            self.reports.append((self.path, body))
            answer = {"ok": True}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_operator() -> Iterator[ThreadingHTTPServer]:
    _Operator.reports = []
    _Operator.handed_out = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Operator)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_run_end_to_end_and_exit_0_on_sigterm(app_dir: Path, http_operator) -> None:
    script = Path(sys.executable).parent / "shiftboss-worker"
    if not script.exists():
        pytest.skip("the shiftboss-worker console script is not installed")
    (app_dir / "token").write_text("t0ken")
    health = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "SHIFTBOSS_OPERATOR_URL": f"http://127.0.0.1:{http_operator.server_port}",
        "SHIFTBOSS_POOL": "pool",
        "SHIFTBOSS_WORKER_ID": "w-e2e",
        "SHIFTBOSS_TOKEN_FILE": str(app_dir / "token"),
        "SHIFTBOSS_HEALTH_PORT": str(health),
        "SHIFTBOSS_CLAIM_WAIT_SECONDS": "1",
        "SHIFTBOSS_LOG_FORMAT": "json",
    }
    proc = subprocess.Popen(
        [str(script), "run", "--app", "wr_cli_app:worker"],
        cwd=app_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while not _Operator.reports and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert _Operator.reports == [("/v1/attempts/uid.1/complete", {"result": 5})]
        with urllib.request.urlopen(f"http://127.0.0.1:{health}/readyz", timeout=2) as answer:
            assert answer.status == 200
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert any(e["message"].startswith("draining (SIGTERM)") for e in lines)
    assert all(e["worker_id"] == "w-e2e" for e in lines if e["logger"].startswith("worker_runtime"))
