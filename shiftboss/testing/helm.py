"""The ``helm`` command line for the demo and the end-to-end tests: the binary built from
its Go module by ``make helm`` (or ``SHIFTBOSS_HELM``), pointed at one cluster's kubeconfig."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the checkout (the chart is not packaged)
CHART = ROOT / "charts" / "shiftboss"


def _helm_version() -> str:
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        if line.startswith("HELM_VERSION="):
            return line.split("=", 1)[1].strip()
    raise RuntimeError("hack/versions.env has no HELM_VERSION")


def find_helm() -> Path:
    """The helm binary, or a clear error saying how to get it."""
    explicit = os.environ.get("SHIFTBOSS_HELM")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("SHIFTBOSS_CACHE", Path.home() / ".cache" / "shiftboss"))
    binary = cache / f"helm-v{_helm_version()}" / "helm"
    if not binary.is_file():
        raise FileNotFoundError(
            f"helm not found at {binary}: run `make helm` (builds and caches it)"
        )
    return binary


class HelmError(RuntimeError):
    """helm exited non-zero; the message carries its output."""


class Helm:
    """``helm`` against one cluster (its kubeconfig), with the test's own helm home."""

    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.binary = find_helm()
        self.kubeconfig = kubeconfig
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def run(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )
        if check and result.returncode:
            raise HelmError(
                f"helm {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def install(
        self,
        release: str,
        namespace: str,
        values: dict[str, Any],
        *,
        chart: Path = CHART,
        upgrade: bool = False,
        timeout: str = "180s",
    ) -> subprocess.CompletedProcess[str]:
        """``helm install`` (or ``upgrade``) with ``--wait``: done when the operator is Ready."""
        verb = ["upgrade"] if upgrade else ["install", "--create-namespace"]
        return self.run(
            *verb,
            release,
            str(chart),
            "-n",
            namespace,
            "--wait",
            f"--timeout={timeout}",
            "--values",
            self._values_file(namespace, release, values),
            timeout=400,
        )

    def _values_file(self, namespace: str, release: str, values: dict[str, Any]) -> str:
        path = Path(self.env["HELM_DATA_HOME"]) / f"values-{namespace}-{release}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
        return str(path)

    def uninstall(self, release: str, namespace: str) -> subprocess.CompletedProcess[str]:
        return self.run("uninstall", release, "-n", namespace, "--wait", "--timeout=120s")
