"""Render the Helm chart with the helm that `make helm` builds (no cluster needed)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "shiftboss"
RELEASE, NAMESPACE = "shiftboss", "shiftboss-system"


def _pinned() -> dict[str, str]:
    lines = (ROOT / "hack" / "versions.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


PINNED = _pinned()


def helm_binary() -> str:
    """$SHIFTBOSS_HELM (the Makefile sets it), else the cache `make helm` fills."""
    configured = os.environ.get("SHIFTBOSS_HELM")
    if configured:
        return configured
    cache = Path(os.environ.get("SHIFTBOSS_CACHE") or Path.home() / ".cache" / "shiftboss")
    binary = cache / f"helm-v{PINNED['HELM_VERSION']}" / "helm"
    if not binary.exists():
        pytest.fail(f"helm is not built ({binary} is missing): run `make helm`", pytrace=False)
    return str(binary)


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [helm_binary(), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}", pytrace=False)
    return result


def set_args(values: dict[str, Any]) -> list[str]:
    """--set-json for each dotted key: types survive (a string stays a string)."""
    return [
        arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")
    ]


def template_args(values: dict[str, Any], chart: Path = CHART) -> list[str]:
    return [
        "template", RELEASE, str(chart), "--namespace", NAMESPACE,
        "--kube-version", PINNED["KUBE_VERSION"], *set_args(values),
    ]  # fmt: skip


@dataclass
class Rendered:
    """The objects of one `helm template`, with lookups by kind and name."""

    objects: list[dict[str, Any]]

    def kinds(self) -> list[str]:
        return sorted(obj["kind"] for obj in self.objects)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(
        self, kind: str, name: str | None = None, namespace: str | None = None
    ) -> dict[str, Any]:
        found = [
            obj
            for obj in self.of_kind(kind)
            if (name is None or obj["metadata"]["name"] == name)
            and (namespace is None or obj["metadata"].get("namespace") == namespace)
        ]
        assert len(found) == 1, f"{len(found)} {kind} named {name!r} in {self.kinds()}"
        return found[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.objects)


def render(**values: Any) -> Rendered:
    """`helm template` with dotted keys as values: render(**{"rbac.scope": "namespaced"})."""
    out = helm(*template_args(values)).stdout
    return Rendered([doc for doc in yaml.safe_load_all(out) if doc])


def render_error(**values: Any) -> str:
    """The error `helm template` stops with (it must fail)."""
    result = helm(*template_args(values), check=False)
    assert result.returncode != 0, f"rendered without error: {values}"
    return result.stderr


def operator_container(rendered: Rendered) -> dict[str, Any]:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}
