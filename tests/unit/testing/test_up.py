"""``python -m shiftboss.testing up`` (``make local-cluster``) without starting a cluster:
its arguments, the images it loads, the lines it prints for a shell, its kubeconfig slot.
Starting, running the README against it and stopping: tests/e2e/test_readme_install.py."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shiftboss.testing import up

ROOT = Path(__file__).resolve().parents[3]


def test_image_arg() -> None:
    assert up.image_arg("reg.io/a/b:1=some/dir") == ("reg.io/a/b:1", Path("some/dir"))
    for bad in ("reg.io/a/b:1", "=dir", "image="):
        with pytest.raises(argparse.ArgumentTypeError, match="expected IMAGE=DIR"):
            up.image_arg(bad)


def test_the_example_images_are_the_ones_the_examples_run() -> None:
    pools = [
        doc
        for doc in yaml.safe_load_all((ROOT / "examples/worker-image/pool.yaml").read_text())
        if doc["kind"] == "WorkerPool"
    ]
    assert pools and {p["spec"]["image"] for p in pools} <= set(up.EXAMPLE_IMAGES)
    for image in {p["spec"]["image"] for p in pools}:
        module = pools[0]["spec"]["app"].split(":")[0]
        assert (up.EXAMPLE_IMAGES[image] / f"{module}.py").is_file()


def test_images_to_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    present, mine = tmp_path / "present", tmp_path / "mine"
    present.mkdir()
    mine.mkdir()
    monkeypatch.setattr(
        up, "EXAMPLE_IMAGES", {"ex:1": present, "gone:1": tmp_path / "not-in-this-checkout"}
    )
    assert up.images_to_load([]) == {"ex:1": present}
    monkeypatch.chdir(tmp_path)  # a relative DIR is the caller's
    assert up.images_to_load([("ex:1", Path("mine")), ("new:1", Path("mine"))]) == {
        "ex:1": mine,
        "new:1": mine,
    }


def test_the_export_lines_put_kubectl_and_helm_first(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "a dir" / "kubeconfig"
    kubectl_dir, helm_dir = tmp_path / "k8s bin", tmp_path / "helm's"
    for directory, tool in ((kubectl_dir, "kubectl"), (helm_dir, "helm")):
        directory.mkdir()
        (directory / tool).write_text("#!/bin/sh\n")
        (directory / tool).chmod(0o755)
    script = "\n".join(up.exports(kubeconfig, kubectl_dir, helm_dir))
    out = subprocess.run(
        ["bash", "-euc", f'{script}\necho "$KUBECONFIG"; command -v kubectl helm'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out == [str(kubeconfig), str(kubectl_dir / "kubectl"), str(helm_dir / "helm")]
    # Without helm, PATH gets kubectl's directory alone.
    assert up.exports(kubeconfig, kubectl_dir, None)[1] == f"export PATH='{kubectl_dir}':$PATH"


def test_the_kubeconfig_slot(tmp_path: Path) -> None:
    path = tmp_path / "local-cluster" / "kubeconfig"
    with up.kubeconfig_slot(path):
        path.write_text(up.MARKER + "ours")
        with (
            pytest.raises(SystemExit, match="another local cluster is using"),
            up.kubeconfig_slot(path),
        ):
            pass
    assert not path.exists()
    path.write_text(up.MARKER + "left by a killed run")
    with up.kubeconfig_slot(path):
        pass
    # A user's own kubeconfig is never overwritten nor removed.
    path.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(SystemExit, match="was not written by `up`"), up.kubeconfig_slot(path):
        pass
    assert path.read_text() == "apiVersion: v1\nkind: Config\n"


def run_up(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shiftboss.testing", "up", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_help_and_bad_arguments(tmp_path: Path) -> None:
    helped = run_up("--help")
    assert helped.returncode == 0
    assert "--load-image IMAGE=DIR" in helped.stdout and "--crds" in helped.stdout
    bad = run_up("--load-image", f"x:1={tmp_path / 'missing'}")
    assert (
        bad.returncode == 2
        and "--load-image x:1=" in bad.stderr
        and "not a directory" in bad.stderr
    )


def test_without_control_plane_binaries_it_says_how_to_build_them(tmp_path: Path) -> None:
    env = {**os.environ, "SHIFTBOSS_CACHE": str(tmp_path), "SHIFTBOSS_K8S_BIN": str(tmp_path)}
    result = run_up("--kubeconfig", str(tmp_path / "kubeconfig"), env=env)
    assert result.returncode == 1
    assert "run `make control-plane`" in result.stderr
    assert not (tmp_path / "kubeconfig").exists()


def test_make_local_cluster_runs_up_after_building_what_it_needs() -> None:
    # Run from `make test` too: a sub-make would print "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "local-cluster", "VENV=/nonexistent-venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.splitlines()
    assert "bash hack/build-control-plane.sh" in out and "bash hack/build-helm.sh" in out
    assert out[-1] == "/nonexistent-venv/bin/python -m shiftboss.testing up"
