"""README's "Install on a cluster" commands, run verbatim against ``make local-cluster``.

The cluster is started as the Makefile starts it (``python -m shiftboss.testing up``, the
example images loaded), the ``export`` lines it prints are pasted into the shell before
the README's first ``sh`` block, and Ctrl-C must then stop everything it started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shiftboss.testing.cluster import find_binaries
from shiftboss.testing.helm import find_helm

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Install on a cluster"
RESULT = {"ports": [80, 443], "replicas": 3}  # what the example job's YAML parses to

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("SHIFTBOSS_KUBECONFIG")),
    reason="the README's pool names the example image at the tag make local-cluster loads "
    "(0.1.0), which make e2e-kind does not load into kind",
)


def readme_install_commands() -> str:
    """The first ``sh`` block under the install section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(f"\n{SECTION}\n") :]
    block = re.search(r"^```sh\n(.*?)^```$", section, re.S | re.M)
    assert block, f"no ```sh block under {SECTION} in README.md"
    return block.group(1)


class LocalClusterProcess:
    """``python -m shiftboss.testing up`` in the background, its output collected."""

    def __init__(self, kubeconfig: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shiftboss.testing", "up", "--kubeconfig", str(kubeconfig)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.up = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl-C stops"):
                self.up.set()
        self.up.set()  # exited: wake the waiter

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_up(self, timeout: float = 120) -> None:
        assert self.up.wait(timeout), f"`up` printed no export lines in {timeout} s:\n{self.output}"
        assert self.proc.poll() is None, f"`up` exited {self.proc.returncode}:\n{self.output}"

    def found(self, pattern: str) -> str:
        for line in self.lines:
            if match := re.search(pattern, line):
                return match.group(1)
        raise AssertionError(f"no {pattern!r} in the output of `up`:\n{self.output}")

    def interrupt(self, timeout: float = 120) -> int:
        """Ctrl-C; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # only so that no test leaves it behind; the test fails below
            raise
        self.reader.join(10)
        return code


def processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment mentions ``text`` (the cluster's workdir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if text.encode() in seen:
            found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


def refused(server: str) -> bool:
    host, port = server.removeprefix("https://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.mark.timeout(900)
def test_the_readme_install_commands_run_verbatim_on_make_local_cluster(tmp_path: Path) -> None:
    commands = readme_install_commands()
    kubeconfig = tmp_path / "kubeconfig"
    cluster = LocalClusterProcess(kubeconfig)
    try:
        cluster.wait_up()
        exports = "\n".join(line for line in cluster.lines if line.startswith("export "))
        env = {  # the user's shell, with a helm home of its own
            **os.environ,
            **{
                f"HELM_{kind}_HOME": str(tmp_path / "helm" / kind)
                for kind in ("CACHE", "CONFIG", "DATA")
            },
        }

        def shell(script: str, timeout: float) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["bash", "-euo", "pipefail", "-c", f"{exports}\n{script}"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )

        # The exports, not whatever else is on this machine's PATH, supply kubectl and helm.
        tools = shell("command -v kubectl helm", 10).stdout.split()
        assert tools == [str(find_binaries() / "kubectl"), str(find_helm())], exports

        ran = shell(commands, 500)
        assert ran.returncode == 0, (
            f"{commands}\nexited {ran.returncode}:\n{ran.stdout}\n{ran.stderr}"
        )
        assert json.loads(ran.stdout.splitlines()[-1]) == RESULT, ran.stdout
    finally:
        code = cluster.interrupt()

    assert code == 0, cluster.output
    assert cluster.lines[-1] == "Local cluster stopped."
    assert not kubeconfig.exists()
    assert refused(cluster.found(r"API server (https://\S+),"))
    workdir = str(Path(cluster.found(r"component logs in (\S+)\.$")).parent)
    assert not Path(workdir).exists()
    assert processes_mentioning(workdir) == []
