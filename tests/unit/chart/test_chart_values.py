"""`helm lint --strict` across the values that matter, and bad values refused clearly."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from chart_render import CHART, PINNED, helm, render_error, set_args

NAMESPACED = {"rbac.scope": "namespaced", "watchNamespaces": ["team-a", "team-b"]}

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": NAMESPACED,
    "monitoring": {
        "metrics.serviceMonitor.enabled": True,
        "metrics.podMonitor.enabled": True,
        "dashboard.enabled": True,
    },
    "tls-secret": {"tls.secretName": "my-tls"},
    "tls-cert-manager": {"tls.certManager.enabled": True},
    "tls-off": {"tls.enabled": False},
    "netpol": {
        "networkPolicy.enabled": True,
        "networkPolicy.metricsFrom": [{"namespaceSelector": {"matchLabels": {"name": "mon"}}}],
    },
    "no-crds-no-rbac": {
        "crds.install": False,
        "rbac.create": False,
        "serviceAccount.create": False,
        "serviceAccount.name": "mine",
    },
}


@pytest.mark.parametrize("values", VARIANTS.values(), ids=VARIANTS.keys())
def test_lint_strict(values):
    result = helm(
        "lint", "--strict", str(CHART), "--namespace", "shiftboss-system",
        "--kube-version", PINNED["KUBE_VERSION"], *set_args(values), check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "misspelled key": ({"replicCount": 2}, "additional properties 'replicCount' not allowed"),
    "misspelled nested key": (
        {"tls.secretname": "x"},
        "at '/tls': additional properties 'secretname' not allowed",
    ),
    "bad enum": ({"rbac.scope": "everywhere"}, "value must be one of 'cluster', 'namespaced'"),
    "replicas as a word": ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
    "privileged port": ({"workerApi.port": 443}, "at '/workerApi/port': minimum"),
    "not an IP": ({"workerApi.service.clusterIP": "svc"}, "is not valid ipv4"),
    "not a namespace name": (
        {"rbac.scope": "namespaced", "watchNamespaces": ["Team_A"]},
        "'Team_A' does not match pattern",
    ),
    "namespaced without namespaces": (
        {"rbac.scope": "namespaced"},
        "watchNamespaces: rbac.scope is namespaced, so list the namespaces to serve",
    ),
    "namespaces without namespaced": (
        {"watchNamespaces": ["team-a"]},
        "watchNamespaces: only for rbac.scope=namespaced",
    ),
    "two TLS sources": (
        {"tls.secretName": "x", "tls.certManager.enabled": True},
        "set tls.secretName (your own Secret) or tls.certManager.enabled, not both",
    ),
    "existing account unnamed": (
        {"serviceAccount.create": False},
        "serviceAccount.name: name the existing ServiceAccount",
    ),
}


@pytest.mark.parametrize(("values", "message"), BAD.values(), ids=BAD.keys())
def test_bad_values_fail_with_a_clear_message(values, message):
    assert message in render_error(**values)


def _closed_objects(node: dict[str, Any], defs: dict[str, Any], path: str = "") -> dict[str, Any]:
    """path -> schema of every object the schema lists properties for (refs followed)."""
    if "$ref" in node:
        node = defs[node["$ref"].rsplit("/", 1)[-1]]
    found = {}
    if "properties" in node:
        found[path or "/"] = node
        for key, child in node["properties"].items():
            found |= _closed_objects(child, defs, f"{path}/{key}")
    return found


def test_schema_is_closed_at_every_level_and_matches_values_yaml():
    schema = json.loads((CHART / "values.schema.json").read_text())
    objects = _closed_objects(schema, schema["definitions"])
    open_objects = {
        p for p, node in objects.items() if node.get("additionalProperties") is not False
    }
    assert open_objects == set()
    declared = {
        f"{path.rstrip('/')}/{key}" for path, node in objects.items() for key in node["properties"]
    }

    def paths(values: dict[str, Any], path: str = "") -> dict[str, Any]:
        out = {}
        for key, value in values.items():
            out[f"{path}/{key}"] = value
            if f"{path}/{key}" in objects and isinstance(value, dict):
                out |= paths(value, f"{path}/{key}")
        return out

    documented = paths(yaml.safe_load((CHART / "values.yaml").read_text()))
    assert set(documented) - declared == set()  # every value has a schema
    # ... and every schema key is in values.yaml, except inside an empty default ({}).
    undocumented = {
        key for key in declared - set(documented) if documented.get(key.rsplit("/", 1)[0]) != {}
    }
    assert undocumented == set()
