"""hack/e2e-kind.sh run against stand-ins for docker, kind, kubectl, helm and pytest that
record their calls: what it builds, loads and runs, and that it cleans up."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "hack" / "e2e-kind.sh"
CLUSTER = "shiftboss-e2e"
SYSTEM_TOOLS = ("bash", "basename", "dirname", "date", "mkdir", "rm", "grep")

#: Each stand-in appends its argv (as JSON) to $CALLS (@PYTHON@: this interpreter); `kind get clusters` prints
#: $KIND_CLUSTERS, `docker build` fails when $FAIL_BUILD is in its arguments.
STUB = """#!/usr/bin/env bash
@PYTHON@ -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$(basename "$0")" "$@" >>"$CALLS"
case "$(basename "$0") $1 $2" in
  "kind get clusters") printf '%s' "${KIND_CLUSTERS:-}" ;;
  "kind get kubeconfig") echo "kind-kubeconfig-of-$4" ;;
  "docker build "*) [[ -z ${FAIL_BUILD:-} || " $* " != *" $FAIL_BUILD "* ]] || exit 3 ;;
esac
"""
#: The venv's pytest: records what the e2e suite would get, exits with $PYTEST_STATUS.
PYTEST = """#!/usr/bin/env bash
@PYTHON@ -c 'import json, os, sys; print(json.dumps(["pytest", *sys.argv[1:], {
    "kubeconfig": open(os.environ["SHIFTBOSS_KUBECONFIG"]).read().strip(),
    "tag": os.environ["SHIFTBOSS_E2E_IMAGE_TAG"],
    "helm": os.environ["SHIFTBOSS_HELM"]}]))' "$@" >>"$CALLS"
exit "${PYTEST_STATUS:-0}"
"""


@dataclass
class Run:
    status: int
    stderr: str
    calls: list[list]

    def of(self, tool: str, *prefix: str) -> list[list]:
        return [
            c[1:] for c in self.calls if c[0] == tool and c[1 : 1 + len(prefix)] == list(prefix)
        ]


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A checkout holding the script and a venv pytest stand-in, and a bin/ of stand-ins."""
    (tmp_path / "repo" / "hack").mkdir(parents=True)
    shutil.copy(SCRIPT, tmp_path / "repo" / "hack" / "e2e-kind.sh")
    venv_bin = tmp_path / "repo" / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "pytest").write_text(PYTEST.replace("@PYTHON@", sys.executable))
    (venv_bin / "pytest").chmod(0o755)
    (tmp_path / "bin").mkdir()
    # Only these system tools are on PATH: a docker or kind installed on the machine
    # must not stand in for a missing stand-in.
    for tool in SYSTEM_TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run hack/e2e-kind.sh"
        (tmp_path / "bin" / tool).symlink_to(found)
    for tool in ("docker", "kind", "kubectl", "helm"):
        (tmp_path / "bin" / tool).write_text(STUB.replace("@PYTHON@", sys.executable))
        (tmp_path / "bin" / tool).chmod(0o755)
    return tmp_path


def run(sandbox: Path, *args: str, **env: str) -> Run:
    calls = sandbox / "calls.jsonl"
    calls.write_text("")
    base = {
        "PATH": str(sandbox / "bin"),
        "HOME": str(sandbox),
        "CALLS": str(calls),
    }
    result = subprocess.run(
        ["bash", str(sandbox / "repo" / "hack" / "e2e-kind.sh"), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    return Run(result.returncode, result.stderr, recorded)


def _built_images(result: Run) -> dict[str, list[str]]:
    """Each `docker build`'s tag and its full arguments."""
    builds = {}
    for call in result.of("docker", "build"):
        builds[call[call.index("-t") + 1]] = call
    return builds


def test_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_fresh_run_builds_loads_tests_and_deletes(sandbox: Path) -> None:
    result = run(sandbox, "-x", "-k", "upgrade")
    assert result.status == 0, result.stderr

    assert result.of("kind", "create", "cluster") == [
        ["create", "cluster", "--name", CLUSTER, "--wait", "180s"]
    ]
    builds = _built_images(result)
    registry = "ghcr.io/shiftboss"
    assert set(builds) == {
        f"{registry}/shiftboss-{name}:e2e"
        for name in ("operator", "worker", "example-worker", "go-smoke")
    }
    for call in builds.values():  # every Dockerfile and context it names is in this repository
        context = ROOT / call[-1]
        dockerfile = ROOT / call[call.index("-f") + 1] if "-f" in call else context / "Dockerfile"
        assert context.is_dir() and dockerfile.is_file(), call
    example = builds[f"{registry}/shiftboss-example-worker:e2e"]
    assert f"WORKER_BASE={registry}/shiftboss-worker:e2e" in example

    loads = result.of("kind", "load", "docker-image")
    assert len(loads) == 1 and loads[0][2:4] == ["--name", CLUSTER]
    assert set(loads[0][4:]) == set(builds)

    [pytest_call] = result.of("pytest")
    assert pytest_call == [
        "-q",
        "tests/e2e",
        "-x",
        "-k",
        "upgrade",
        {
            "kubeconfig": f"kind-kubeconfig-of-{CLUSTER}",
            "tag": "e2e",
            "helm": str(sandbox / "bin" / "helm"),
        },
    ]
    order = [c[0] + " " + c[1] for c in result.calls]
    assert order.index("kind load") < order.index("pytest -q") < order.index("kind delete")
    assert result.of("kind", "delete") == [["delete", "cluster", "--name", CLUSTER]]


def test_operator_image_is_the_charts_default_repository(sandbox: Path) -> None:
    values = yaml.safe_load((ROOT / "charts" / "shiftboss" / "values.yaml").read_text())
    builds = _built_images(run(sandbox))
    assert f"{values['image']['repository']}:e2e" in builds


def test_keep_reuses_an_existing_cluster_and_keeps_it(sandbox: Path) -> None:
    result = run(
        sandbox, KEEP="1", KIND_CLUSTERS=f"other\n{CLUSTER}\n", SHIFTBOSS_E2E_IMAGE_TAG="pr7"
    )
    assert result.status == 0, result.stderr
    assert not result.of("kind", "create") and not result.of("kind", "delete")
    assert all(tag.endswith(":pr7") for tag in _built_images(result))
    assert result.of("pytest")[0][-1]["tag"] == "pr7"
    kubeconfig = sandbox / "repo" / ".cache" / "e2e-kind" / "kubeconfig"
    assert str(kubeconfig) in result.stderr and kubeconfig.is_file()


def test_a_failed_build_still_deletes_the_cluster(sandbox: Path) -> None:
    result = run(sandbox, FAIL_BUILD="images/worker/Dockerfile")
    assert result.status == 3
    assert not result.of("pytest") and not result.of("kind", "load")
    assert result.of("kind", "delete")


def test_failing_tests_fail_the_script_and_delete_the_cluster(sandbox: Path) -> None:
    result = run(sandbox, PYTEST_STATUS="1")
    assert result.status == 1
    assert result.of("kind", "delete")


@pytest.mark.parametrize("tool", ["docker", "kind", "kubectl", "helm"])
def test_a_missing_tool_is_named_before_anything_runs(sandbox: Path, tool: str) -> None:
    (sandbox / "bin" / tool).unlink()
    result = run(sandbox)
    assert result.status == 1
    assert f"{tool} " in result.stderr and "PATH" in result.stderr, result.stderr
    assert not result.of("kind", "create") and not result.of("docker", "build")


def test_helm_from_shiftboss_helm(sandbox: Path) -> None:
    (sandbox / "bin" / "helm").rename(sandbox / "helm-built")
    result = run(sandbox, SHIFTBOSS_HELM=str(sandbox / "helm-built"))
    assert result.status == 0, result.stderr
    assert result.of("pytest")[0][-1]["helm"] == str(sandbox / "helm-built")
    broken = run(sandbox, SHIFTBOSS_HELM=str(sandbox / "nowhere"))
    assert broken.status == 1 and "make helm" in broken.stderr


def test_a_missing_venv_says_make_venv(sandbox: Path) -> None:
    os.remove(sandbox / "repo" / ".venv" / "bin" / "pytest")
    result = run(sandbox)
    assert result.status == 1 and "make venv" in result.stderr
