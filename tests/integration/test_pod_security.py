"""Worker pods pass Pod Security ``restricted``: in a namespace whose admission enforces
it, the operator's pods are admitted and run a job, and the same pod without any one of
the settings that profile demands is refused (so the namespace really enforces it).

The process node runs containers as processes of the current user: it ignores
``securityContext``.  What is tested here is the API server's admission."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from conftest import apply, get, job_manifest, pool_manifest, wait_jobs_done

from shiftboss.testing.operator import OperatorProcess

ENFORCE = "pod-security.kubernetes.io/enforce"

#: A setting of the worker pod's or its container's securityContext, and what the
#: admission says when it is missing.
REQUIRED: dict[str, tuple[str, str]] = {
    "runAsNonRoot": ("pod", "runAsNonRoot != true"),
    "seccompProfile": ("pod", "seccompProfile"),
    "allowPrivilegeEscalation": ("container", "allowPrivilegeEscalation != false"),
    "capabilities": ("container", "unrestricted capabilities"),
}


@pytest.fixture
def restricted(cluster, namespace) -> str:
    cluster.kubectl(
        "label", "namespace", namespace, f"{ENFORCE}=restricted", f"{ENFORCE}-version=latest"
    )
    return namespace


def test_worker_pods_are_admitted_under_restricted_and_run_jobs(cluster, restricted, tmp_path):
    log = tmp_path / "operator.log"
    with OperatorProcess(cluster.env(), log, namespaces=[restricted]):
        apply(
            cluster,
            restricted,
            pool_manifest("demo", replicas=1),
            job_manifest("add", "add", {"a": 2, "b": 3}),
        )
        [job] = wait_jobs_done(cluster, restricted, 1, timeout=90)
        assert (job["status"]["phase"], job["status"]["result"]) == ("Succeeded", 5)
        [pod] = get(cluster, restricted, "pods")["items"]
    assert "Traceback" not in log.read_text(errors="replace")
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    # The same pod, as the operator made it, is admitted again (a server-side dry run)...
    assert dry_run(cluster, restricted, copy_of(pod)).returncode == 0
    # ...and refused without any one of the settings the namespace demands.
    for setting, (level, complaint) in REQUIRED.items():
        result = dry_run(cluster, restricted, without(copy_of(pod), level, setting))
        assert result.returncode != 0, f"a worker pod without {setting} was admitted"
        assert 'violates PodSecurity "restricted:latest"' in result.stderr, result.stderr
        assert complaint in result.stderr, result.stderr


def copy_of(pod: dict[str, Any]) -> dict[str, Any]:
    """A new pod with the spec of ``pod`` (the API server's own fields left out)."""
    spec = copy.deepcopy(pod["spec"])
    spec.pop("nodeName", None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "copy"}, "spec": spec}


def without(pod: dict[str, Any], level: str, setting: str) -> dict[str, Any]:
    owner = pod["spec"] if level == "pod" else pod["spec"]["containers"][0]
    del owner["securityContext"][setting]
    return pod


def dry_run(cluster, namespace: str, pod: dict[str, Any]):
    return cluster.kubectl(
        "-n", namespace, "create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False
    )
