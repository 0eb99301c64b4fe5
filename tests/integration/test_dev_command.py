"""``shiftboss dev`` as a job author runs it: from a project directory outside the
repository, with an app of its own; a job submitted with the printed commands; Ctrl-C
stops every process it started."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from shiftboss.devloop.instructions import READY_LINE
from shiftboss.testing.processes import wait_until

BIN = Path(sys.executable).parent
START_TIMEOUT = 180.0

APP = '''
from pydantic import BaseModel
from worker_runtime import Worker

app = Worker()


class Greeting(BaseModel):
    name: str
    times: int = 2


@app.skill()
def greet(params: Greeting) -> str:
    """Say hello, a few times."""
    return " ".join([f"hello {params.name}"] * params.times)
'''


def read_lines(stream, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def read_until(
    lines: queue.Queue[str | None], proc: subprocess.Popen[str], wanted: str, timeout: float
) -> list[str]:
    """The lines printed, up to the first one that contains ``wanted``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError(f"shiftboss dev exited ({proc.wait(5)}):\n" + "\n".join(seen))
        seen.append(line)
        if wanted in line:
            return seen
    raise AssertionError(f"no {wanted!r} within {timeout:.0f}s:\n" + "\n".join(seen))


def worker_pods(env: dict[str, str], ready: bool = False) -> set[str]:
    """The dev pool's pods that are not being deleted (and are Ready, if asked)."""
    out = subprocess.run(
        ["kubectl", "get", "pods", "-l", "shiftboss.io/pool=dev", "-o", "json"],
        env=env, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    names = set()
    for pod in json.loads(out.stdout)["items"]:
        conditions = pod.get("status", {}).get("conditions", [])
        is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        if not pod["metadata"].get("deletionTimestamp") and (is_ready or not ready):
            names.add(pod["metadata"]["name"])
    return names


def descendants(root: int) -> dict[int, str]:
    """Every process under ``root``: pid -> its start time (so a reused pid is not it)."""
    parents: dict[int, int] = {}
    started: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
            started[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found:
                found[child] = started[child]
                frontier.append(child)
    return found


def alive(pid: int, start: str) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False
    return fields[19] == start and fields[0] != "Z"


def test_dev_runs_the_app_from_the_project_directory_until_ctrl_c(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "hello_app.py").write_text(APP)
    kubeconfig = tmp_path / "dev-kubeconfig"
    log = (tmp_path / "dev.stderr").open("w")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("KUBECONFIG", None)
    proc = subprocess.Popen(
        [str(BIN / "shiftboss"), "dev", "--app", "hello_app:app", "--kubeconfig", str(kubeconfig)],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc.stdout, lines), daemon=True).start()
    try:
        printed = read_until(lines, proc, READY_LINE, START_TIMEOUT)
        exports = dict(
            line.strip().removeprefix("export ").split("=", 1)
            for line in printed
            if line.strip().startswith("export ")
        )
        assert exports["KUBECONFIG"] == str(kubeconfig)
        assert "Skills: greet." in printed
        submit = next(
            line.strip() for line in printed if line.strip().startswith("shiftboss submit")
        )
        assert submit == "shiftboss submit dev greet -p name=example --wait"

        user_env = {
            **env,
            "KUBECONFIG": exports["KUBECONFIG"],
            "PATH": exports["PATH"].replace("$PATH", env["PATH"]),
        }
        argv = [str(BIN / "shiftboss"), *shlex.split(submit)[1:], "--timeout", "120s"]
        submitted = subprocess.run(argv, env=user_env, capture_output=True, text=True, timeout=150)
        assert (submitted.returncode, submitted.stdout) == (0, '"hello example hello example"\n'), (
            submitted.stderr
        )
        before = worker_pods(user_env)
        assert before and all(name.startswith("dev-") for name in before)

        # An edit restarts the workers, which then run the new code.
        (project / "hello_app.py").write_text(APP.replace('f"hello {params.name}"', '"hi"'))
        read_until(lines, proc, "hello_app.py changed: restarting the workers of pool dev", 30)
        wait_until(
            lambda: (now := worker_pods(user_env, ready=True)) and not now & before,
            timeout=120,
            what="new workers to replace the old ones",
        )
        again = subprocess.run(argv, env=user_env, capture_output=True, text=True, timeout=150)
        assert (again.returncode, again.stdout) == (0, '"hi hi"\n'), again.stderr

        started = descendants(proc.pid)
        assert len(started) >= 6, (
            started
        )  # etcd, apiserver, controllers, scheduler, node, operator, worker
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:  # a failed assertion: end it as a user would, then by force
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log.close()
    err = (tmp_path / "dev.stderr").read_text()
    assert "Traceback" not in err, err
    wait_until(
        lambda: not [pid for pid, start in started.items() if alive(pid, start)],
        timeout=10,
        what="every process shiftboss dev started to be gone",
    )
    assert not kubeconfig.exists()
