"""The kustomize base with its cluster-wide overlay, applied as a GitOps tool applies it
(``kubectl apply -k``) through an overlay of the user's own, with the TLS Secret they
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

from shiftboss.testing.pki import write_self_signed
from shiftboss.testing.processes import wait_until

SYSTEM = "shiftboss-system"  # the base's namespace
SECRET = "shiftboss-worker-api-tls"  # the Secret the base mounts


def _user_overlay(tmp_path: Path, image_tag: str | None) -> Path:
    """An overlay of the user's own on top of ``overlays/cluster-wide``."""
    tree = tmp_path / "kustomize"
    shutil.copytree(ROOT / "deploy" / "kustomize", tree)
    overlay: dict[str, object] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../overlays/cluster-wide"],
    }
    if image_tag:  # the images make e2e-kind built
        overlay["images"] = [{"name": f"{REGISTRY}/shiftboss-operator", "newTag": image_tag}]
    (tree / "mine").mkdir()
    (tree / "mine" / "kustomization.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    return tree / "mine"


@pytest.fixture
def applied(target: Cluster, tmp_path: Path, image_tag: str | None) -> Iterator[Path]:
    overlay = _user_overlay(tmp_path, image_tag)
    target.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(ROOT / "deploy" / "kustomize" / "base" / "namespace.yaml"),
    )
    # The name workers are given (the base's SHIFTBOSS_WORKER_API_URL), as docs/install.md
    # tells users to issue it.
    cert, key = write_self_signed(tmp_path / "tls", "worker-api", (f"shiftboss.{SYSTEM}.svc",))
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
        apply(target, work, pool_manifest(image_tag, "yaml", replicas=1))
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
