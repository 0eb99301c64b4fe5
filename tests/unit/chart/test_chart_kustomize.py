"""deploy/kustomize/ is generated from the chart (no drift), builds with `kubectl
kustomize`, and each overlay yields the objects `helm template` does for its scope."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
import yaml
from chart_render import NAMESPACE, ROOT, helm_binary, render

from shiftboss.testing.kubectl import find_binaries

KUSTOMIZE = ROOT / "deploy" / "kustomize"
TLS = {"tls.secretName": "shiftboss-worker-api-tls"}
SCOPES = {
    "cluster-wide": {},
    "namespaced": {"rbac.scope": "namespaced", "watchNamespaces": ["team-a", "team-b"]},
}
HELM_ONLY = ("helm.sh/chart", "app.kubernetes.io/managed-by", "helm.sh/resource-policy")


def test_no_drift_from_the_chart():
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "render-kustomize.py"), "--check"],
        capture_output=True,
        text=True,
        env={**os.environ, "SHIFTBOSS_HELM": helm_binary()},
        check=False,
    )
    assert result.returncode == 0, result.stderr


def kustomize(overlay: str) -> list[dict[str, Any]]:
    try:
        kubectl = find_binaries() / "kubectl"
    except FileNotFoundError as exc:
        pytest.fail(f"kubectl (it builds kustomizations) is missing: {exc}", pytrace=False)
    out = subprocess.run(
        [str(kubectl), "kustomize", str(KUSTOMIZE / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def without_helm(node: Any) -> Any:
    """Helm's bookkeeping labels and annotations removed, at every level (pod templates)."""
    if isinstance(node, list):
        return [without_helm(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("labels", "annotations") and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in HELM_ONLY}
            if not value:
                continue
        out[key] = without_helm(value)
    return out


def by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Objects by (kind, namespace, name), compared without Helm's bookkeeping; a CRD by
    its spec (the chart labels its copy)."""
    keyed = {}
    for obj in map(without_helm, objects):
        meta = obj["metadata"]
        keyed[(obj["kind"], meta.get("namespace", ""), meta["name"])] = (
            obj["spec"] if obj["kind"] == "CustomResourceDefinition" else obj
        )
    return keyed


@pytest.mark.parametrize("overlay", SCOPES)
def test_overlay_equals_the_chart(overlay):
    built = by_key(kustomize(overlay))
    namespace = built.pop(("Namespace", "", NAMESPACE))
    assert namespace["metadata"]["labels"] == {"pod-security.kubernetes.io/enforce": "restricted"}
    assert built == by_key(render(**SCOPES[overlay], **TLS).objects)
