"""The CI workflows: valid YAML, pinned actions and tools, and the commands they run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from images_dockerfile import parse

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = ROOT / ".github" / "workflows"
E2E = WORKFLOWS / "e2e-kind.yml"
TEST = WORKFLOWS / "test.yml"


def _load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} is not a mapping"
    return data


def _steps(path: Path) -> list[dict[str, Any]]:
    return [step for job in _load(path)["jobs"].values() for step in job["steps"]]


def _runs(path: Path) -> list[str]:
    return [line.strip() for step in _steps(path) for line in step.get("run", "").splitlines()]


@pytest.mark.parametrize("path", [E2E, TEST], ids=lambda p: p.name)
def test_runs_on_push_and_pull_request(path: Path) -> None:
    data = _load(path)
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    assert {"push", "pull_request"} <= set(triggers)
    assert all(job["runs-on"] == "ubuntu-latest" for job in data["jobs"].values())


@pytest.mark.parametrize("path", [E2E, TEST], ids=lambda p: p.name)
def test_actions_are_pinned_to_major_tags(path: Path) -> None:
    uses = [step["uses"] for step in _steps(path) if "uses" in step]
    assert {u.split("@")[0] for u in uses} >= {
        "actions/checkout",
        "actions/setup-python",
        "actions/setup-go",
    }
    for use in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", use), f"{path.name}: {use} is not pinned"


@pytest.mark.parametrize("path", [E2E, TEST], ids=lambda p: p.name)
def test_python_matches_the_images(path: Path) -> None:
    base = parse(ROOT / "images" / "operator" / "Dockerfile").final.base
    versions = {
        str(step["with"]["python-version"])
        for step in _steps(path)
        if step.get("uses", "").startswith("actions/setup-python")
    }
    assert versions == {re.match(r"python:(\d+\.\d+)", base).group(1)}  # type: ignore[union-attr]


def test_e2e_builds_kind_and_helm_then_runs_the_script() -> None:
    runs = _runs(E2E)
    kind = [r for r in runs if "sigs.k8s.io/kind@" in r]
    assert kind and re.search(r"sigs\.k8s\.io/kind@v\d+\.\d+\.\d+$", kind[0]), kind
    order = ["make helm", "make venv", "bash hack/e2e-kind.sh"]
    assert all(command in runs for command in order), runs
    assert [runs.index(c) for c in order] == sorted(runs.index(c) for c in order)


def test_the_kind_version_in_ci_is_the_one_the_script_suggests() -> None:
    [install] = [r for r in _runs(E2E) if "sigs.k8s.io/kind@" in r]
    version = install.rsplit("@", 1)[1]
    assert f"sigs.k8s.io/kind@{version}" in (ROOT / "hack" / "e2e-kind.sh").read_text()


def test_the_test_workflow_runs_make_test() -> None:
    assert "make test" in _runs(TEST)
