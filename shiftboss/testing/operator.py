"""Run the operator as a child process against a cluster, for tests and the demo."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import sys
import time
import urllib.request
from pathlib import Path

from shiftboss.testing.cluster import free_port
from shiftboss.testing.processes import ManagedProcess, wait_until


class OperatorProcess:
    """``shiftboss run`` on a free loopback port; ``stop()`` ends it by its process id."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        *,
        namespaces: list[str] | None = None,
        lease_seconds: float = 5.0,
        heartbeat_seconds: float = 1.0,
        extra_args: list[str] | None = None,
        port: int | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``tls``: a certificate and key (PEM) to serve the worker API with, over https."""
        self.port = port or free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._ssl = ssl.create_default_context(cafile=str(tls[0])) if tls else None
        argv = [
            sys.executable,
            "-m",
            "shiftboss.cli",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--lease-seconds",
            str(lease_seconds),
            "--heartbeat-seconds",
            str(heartbeat_seconds),
        ]
        if tls:
            argv += ["--tls-cert-file", str(tls[0]), "--tls-key-file", str(tls[1])]
        for namespace in namespaces or []:
            argv += ["--namespace", namespace]
        if not namespaces:
            argv.append("--all-namespaces")
        self.process = ManagedProcess(
            "operator", argv + (extra_args or []), log, env={**env, "PYTHONUNBUFFERED": "1"}
        )

    def start(self, timeout: float = 60, *, wait: bool = True) -> OperatorProcess:
        self.process.start()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if not self.process.running():
                raise RuntimeError(
                    f"operator exited ({self.process.exit_code()}):\n{self.process.tail()}"
                )
            with urllib.request.urlopen(
                f"{self.url}/readyz", timeout=2, context=self._ssl
            ) as response:
                return bool(response.status == 200)

        wait_until(ready, timeout=timeout, what="the operator's /readyz")

    def stop(self) -> None:
        """SIGTERM; an operator still running after 15 s writes its thread and task stacks
        into its log (``shiftboss.stackdump``) before it is killed: why it did not stop."""
        self.process.stop(timeout=15, before_kill=self._dump_stacks)

    def _dump_stacks(self) -> None:
        pid = self.process.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGUSR1)
            os.kill(pid, signal.SIGUSR2)
        time.sleep(1)

    def kill(self) -> None:
        """Crash the operator (SIGKILL): no cleanup, no release of anything."""
        self.process.kill()

    def __enter__(self) -> OperatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
