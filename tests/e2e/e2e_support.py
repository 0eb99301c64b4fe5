"""Helpers of the end-to-end tests: namespaces, chart values and manifests per target."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from shiftboss.testing.cluster import ExistingCluster, LocalCluster
from shiftboss.testing.processes import wait_until
from shiftboss.testing.up import EXAMPLE_IMAGES

ROOT = Path(__file__).resolve().parents[2]
#: The images hack/e2e-kind.sh builds (the chart's default repositories).
REGISTRY = "ghcr.io/shiftboss"
#: The example worker image as the local control plane loads it (``shiftboss.testing.up``).
EXAMPLE_WORKER = next(i for i in EXAMPLE_IMAGES if "/shiftboss-example-worker:" in i)
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}

Cluster = LocalCluster | ExistingCluster


def restricted_namespace(target: Cluster, prefix: str) -> str:
    """A new namespace that enforces Pod Security ``restricted``."""
    name = target.create_namespace(f"{prefix}-{uuid.uuid4().hex[:6]}")
    target.kubectl("label", "namespace", name, *(f"{k}={v}" for k, v in RESTRICTED.items()))
    return name


def operator_values(image_tag: str | None, **values: Any) -> dict[str, Any]:
    """Chart values for this target: the chart's defaults, a short leader Lease (so that a
    hand-over is quick) and, on kind, the images make e2e-kind built."""
    base: dict[str, Any] = {"operator": {"leaderElectLeaseSeconds": 6}}
    if image_tag:
        base["image"] = {"tag": image_tag}
    return {**base, **values}


def pool_manifest(image_tag: str | None, name: str, **spec: Any) -> dict[str, Any]:
    """A pool of the example worker image (examples/worker-image): on kind the image make
    e2e-kind built, on the local control plane the one ``up`` loads from that folder."""
    image = f"{REGISTRY}/shiftboss-example-worker:{image_tag}" if image_tag else EXAMPLE_WORKER
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "app": "app:worker",
            "replicas": 2,
            "concurrency": 4,
            "drainTimeoutSeconds": 10,
            **spec,
        },
    }


def job_manifest(name: str, pool: str, skill: str, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"pool": pool, "skill": skill, "params": params},
    }


def apply(target: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    target.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc))


def jobs(target: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = target.get_json("-n", namespace, "jobs.shiftboss.io")["items"]
    return items


def wait_succeeded(
    target: Cluster, namespace: str, count: int, timeout: float = 180
) -> list[dict[str, Any]]:
    """Wait until ``count`` Jobs finished; fail at once if any ended otherwise."""

    def finished() -> list[dict[str, Any]] | None:
        items = jobs(target, namespace)
        phases = [j.get("status", {}).get("phase") for j in items]
        wrong = [j for j, p in zip(items, phases, strict=True) if p in ("Failed", "Cancelled")]
        assert not wrong, json.dumps([w.get("status") for w in wrong], indent=1)[:4000]
        return items if phases.count("Succeeded") >= count else None

    return wait_until(
        finished, timeout=timeout, interval=1, what=f"{count} jobs to succeed in {namespace}"
    )


def operator_pods(target: Cluster, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = target.get_json(
        "-n", namespace, "pods", "-l", "app.kubernetes.io/name=shiftboss"
    )["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def leader_pods(target: Cluster, namespace: str) -> list[str]:
    return [
        p["metadata"]["name"]
        for p in operator_pods(target, namespace)
        if p["metadata"].get("labels", {}).get("shiftboss.io/leader") == "true"
    ]


def operator_logs(target: Cluster, namespace: str) -> str:
    """Every operator container's log (the current pods)."""
    parts = []
    for pod in operator_pods(target, namespace):
        name = pod["metadata"]["name"]
        out = target.kubectl("-n", namespace, "logs", name, check=False)
        parts.append(f"--- {name} ---\n{out.stdout}{out.stderr}")
    return "\n".join(parts)


def explain_repeats(target: Cluster, system: str, work: str, repeated: list[dict[str, Any]]) -> str:
    """For Jobs that took more than one attempt: each one's timeline, and the operator's and
    workers' log lines that name it, so that a failure in CI says whether an attempt ran
    twice and why the operator started another."""
    names = [j["metadata"]["name"] for j in repeated]
    parts = [json.dumps({j["metadata"]["name"]: j.get("status", {}) for j in repeated}, indent=1)]
    logs = operator_logs(target, system)
    workers = target.get_json("-n", work, "pods", "-l", "shiftboss.io/pool")["items"]
    for pod in workers:
        name = pod["metadata"]["name"]
        out = target.kubectl("-n", work, "logs", name, check=False)
        logs += f"\n--- {name} ---\n{out.stdout}{out.stderr}"
    wanted = [
        line
        for line in logs.splitlines()
        if line.startswith("---") or any(n in line for n in names)
    ]
    parts.append("\n".join(wanted)[-12000:])
    return "\n".join(parts)
