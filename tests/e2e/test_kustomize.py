"""The kustomize base with its cluster-wide overlay, applied as a GitOps tool applies it
(``kubectl apply -k``), customised the way users customise it: an overlay of their own
(here: the Service's cluster IP and the URL workers are given) and the TLS Secret they
create themselves."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from e2e_support import (
    REGISTRY,
    ROOT,
    Cluster,
    apply,
    job_manifest,
    leader_pods,
    operator_logs,
    pool_manifest,
    restricted_namespace,
    wait_succeeded,
)

from shiftboss.testing.cluster import LocalCluster
from shiftboss.testing.pki import write_self_signed
from shiftboss.testing.processes import wait_until

SYSTEM = "shiftboss-system"  # the base's namespace
SECRET = "shiftboss-worker-api-tls"  # the Secret the base mounts


def _user_overlay(
    tmp_path: Path, target: Cluster, image_tag: str | None
) -> tuple[Path, tuple[str, ...]]:
    """An overlay of the user's own on top of ``overlays/cluster-wide``; the names the
    serving certificate must carry."""
    tree = tmp_path / "kustomize"
    shutil.copytree(ROOT / "deploy" / "kustomize", tree)
    names: tuple[str, ...] = (f"shiftboss.{SYSTEM}.svc",)
    overlay: dict[str, object] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../overlays/cluster-wide"],
    }
    if isinstance(target, LocalCluster):  # no cluster DNS: a pinned IP, given to workers
        ip = target.free_service_ip()
        names = (ip, *names)
        overlay["patches"] = [
            {
                "target": {"kind": "Service", "name": "shiftboss"},
                "patch": f"- op: add\n  path: /spec/clusterIP\n  value: {ip}\n",
            },
            {
                "target": {"kind": "Deployment", "name": "shiftboss"},
                "patch": yaml.safe_dump(
                    [
                        {
                            "op": "replace",
                            "path": "/spec/template/spec/containers/0/env/"
                            + str(_env_index(tree, "SHIFTBOSS_WORKER_API_URL")),
                            "value": {
                                "name": "SHIFTBOSS_WORKER_API_URL",
                                "value": f"https://{ip}:8000",
                            },
                        }
                    ]
                ),
            },
        ]
    if image_tag:  # the images make e2e-kind built
        overlay["images"] = [{"name": f"{REGISTRY}/shiftboss-operator", "newTag": image_tag}]
    (tree / "mine").mkdir()
    (tree / "mine" / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return tree / "mine", names


def _env_index(tree: Path, name: str) -> int:
    deployment = yaml.safe_load((tree / "base" / f"deployment-{SYSTEM}-shiftboss.yaml").read_text())
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    return [e["name"] for e in env].index(name)


@pytest.fixture
def applied(target: Cluster, tmp_path: Path, image_tag: str | None) -> Iterator[Path]:
    overlay, names = _user_overlay(tmp_path, target, image_tag)
    target.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(ROOT / "deploy" / "kustomize" / "base" / "namespace.yaml"),
    )
    cert, key = write_self_signed(tmp_path / "tls", "worker-api", names)
    target.kubectl(
        "-n",
        SYSTEM,
        "create",
        "secret",
        "generic",
        SECRET,
        "--type=kubernetes.io/tls",
        f"--from-file=tls.crt={cert}",
        f"--from-file=tls.key={key}",
        f"--from-file=ca.crt={cert}",
    )
    target.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(overlay), timeout=120)
    yield overlay
    # Remove the operator and its rights; keep the CRDs (and so every user object).
    selector = "app.kubernetes.io/managed-by=kustomize,app.kubernetes.io/instance=shiftboss"
    target.kubectl("delete", "clusterrole,clusterrolebinding", "-l", selector, check=False)
    target.kubectl("-n", "default", "delete", "role,rolebinding", "-l", selector, check=False)
    target.kubectl("delete", "namespace", SYSTEM, "--wait=false", check=False)


def test_apply_k_cluster_wide_runs_jobs(
    target: Cluster, applied: Path, image_tag: str | None
) -> None:
    target.kubectl(
        "-n", SYSTEM, "rollout", "status", "deployment/shiftboss", "--timeout=180s", timeout=200
    )
    wait_until(lambda: len(leader_pods(target, SYSTEM)) == 1, timeout=60, what="a leader pod")
    work = restricted_namespace(target, "team-k")  # any namespace: cluster-wide
    try:
        apply(target, work, pool_manifest(target, image_tag, "yaml", replicas=1))
        apply(
            target,
            work,
            *(job_manifest(f"add-{i}", "yaml", "add", {"a": i, "b": i}) for i in range(4)),
        )
        done = wait_succeeded(target, work, 4)
        assert sorted(j["status"]["result"] for j in done) == [0, 2, 4, 6]
        assert "forbidden" not in operator_logs(target, SYSTEM).lower()
    finally:
        target.kubectl("delete", "namespace", work, "--wait=false", check=False)
