"""The Argo CD health checks over the fixtures of deploy/argocd, in Argo CD's own layout
(``<group>/<kind>/health_test.yaml`` naming ``testdata/*.yaml`` and the expected health)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from gitops_checks import ARGOCD, health, script

from shiftboss.api.job import Job
from shiftboss.api.workerpool import WorkerPool

MODELS = {"WorkerPool": WorkerPool, "Job": Job}


def cases() -> list[tuple[str, Path, dict[str, str]]]:
    found = []
    for kind in MODELS:
        folder = ARGOCD / "shiftboss.io" / kind
        for case in yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]:
            found.append((kind, folder / case["inputPath"], case["healthStatus"]))
    return found


@pytest.mark.parametrize(
    ("kind", "path", "expected"), cases(), ids=lambda v: v.stem if isinstance(v, Path) else ""
)
def test_health_of_each_fixture(kind: str, path: Path, expected: dict[str, str]) -> None:
    obj = yaml.safe_load(path.read_text())
    MODELS[kind].model_validate(obj)  # a fixture is an object the operator could have written
    assert health(kind, obj) == (expected["status"], expected["message"])


def test_every_fixture_is_tested() -> None:
    for kind in MODELS:
        tested = {path.name for k, path, _ in cases() if k == kind}
        on_disk = {p.name for p in (ARGOCD / "shiftboss.io" / kind / "testdata").glob("*.yaml")}
        assert tested == on_disk, kind


@pytest.mark.parametrize("phase", ["Pending", "Queued", "Running", "Retrying"])
def test_every_unfinished_phase_is_progressing(phase: str) -> None:
    obj = {"metadata": {"name": "j", "generation": 1}, "status": {"phase": phase}}
    assert health("Job", obj) == ("Progressing", f"{phase}: under way")


def test_a_finished_job_stays_finished_whatever_its_generation() -> None:
    # Terminal phases are final: a later edit of the spec changes nothing the operator does.
    obj = {
        "metadata": {"name": "j", "generation": 5},
        "status": {"phase": "Succeeded", "observedGeneration": 1},
    }
    assert health("Job", obj) == ("Healthy", "Succeeded")


def test_the_argocd_cm_patch_carries_the_scripts_as_they_are() -> None:
    spec = importlib.util.spec_from_file_location("argocd_render", ARGOCD / "render.py")
    assert spec is not None and spec.loader is not None
    render = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render)
    patch = (ARGOCD / "argocd-cm-patch.yaml").read_text()
    assert patch == render.render(), "stale: run python deploy/argocd/render.py"
    data = yaml.safe_load(patch)["data"]
    assert data == {
        f"resource.customizations.health.shiftboss.io_{kind}": script(kind).read_text()
        for kind in MODELS
    }
