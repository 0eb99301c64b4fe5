"""kubectl for tests: the helpers shared by a local control plane and an existing
cluster, that existing cluster (kind, or any, reached by a kubeconfig), and where the
control plane binaries (kubectl among them) are."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from shiftboss.testing.binaries import BINARIES, cache_root
from shiftboss.testing.processes import wait_until


def find_binaries() -> Path:
    """The directory holding the control plane binaries, or a clear error saying how to
    build them (``shiftboss.testing.binaries.ensure_binaries`` builds them instead)."""
    env = os.environ.get("SHIFTBOSS_K8S_BIN")
    candidates = [Path(env)] if env else []
    cache = cache_root()
    candidates += sorted(
        (p.parent / "bin" for p in cache.glob("k8s-*/.complete")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for bin_dir in candidates:
        if all((bin_dir / b).is_file() for b in BINARIES):
            return bin_dir
    raise FileNotFoundError(
        "control plane binaries not found"
        + (f" in SHIFTBOSS_K8S_BIN={env}" if env else f" under {cache}")
        + ": run `make control-plane` (builds them once and caches them), "
        "or set SHIFTBOSS_K8S_BIN to a directory with " + ", ".join(BINARIES)
    )


class KubectlMixin:
    """kubectl helpers shared by the local cluster and an existing one."""

    kubeconfig: Path

    def kubectl_binary(self) -> str:
        raise NotImplementedError

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.kubectl_binary(), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and result.returncode:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, result.stdout, result.stderr
            )
        return result

    def get_json(self, *args: str) -> dict[str, Any]:
        """``kubectl get ARGS -o json``, parsed."""
        doc: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return doc

    def create_namespace(self, name: str, timeout: float = 30) -> str:
        """Create a namespace and wait for its default service account (pods need it)."""
        self.kubectl("create", "namespace", name)
        wait_until(
            lambda: (
                self.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode
                == 0
            ),
            timeout=timeout,
            what=f"the default service account in namespace {name}",
        )
        return name


class ExistingCluster(KubectlMixin):
    """A cluster someone else runs (kind, or any), reached through a kubeconfig."""

    def __init__(self, kubeconfig: str | Path) -> None:
        self.kubeconfig = Path(kubeconfig)
        self._kubectl = shutil.which("kubectl") or str(find_binaries() / "kubectl")

    def kubectl_binary(self) -> str:
        return self._kubectl

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
