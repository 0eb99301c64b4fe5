"""WorkerPool status against kstatus (sigs.k8s.io/cli-utils/pkg/kstatus), which Flux,
kpt and Helm 4's --wait use for custom resources: its generic rules must read each pool
state the way the pool's own Ready condition and Argo CD's check do."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitops_checks import ARGOCD, health, kstatus

from shiftboss.api.workerpool import WorkerPool
from shiftboss.pools.health import Trouble
from shiftboss.pools.podview import PodView
from shiftboss.pools.status import pool_status

FIXTURES = ARGOCD / "shiftboss.io" / "WorkerPool" / "testdata"


#: kstatus and Argo CD on each fixture.  A pool without a status yet is Current to
#: kstatus (it cannot tell it from a kind without status); Argo CD's check waits.
EXPECTED = {
    "healthy": ("Current", "Healthy"),
    "paused": ("Current", "Suspended"),
    "rolling": ("InProgress", "Progressing"),
    "starting": ("InProgress", "Progressing"),
    "crashloop": ("Failed", "Degraded"),
    "generation-not-observed": ("InProgress", "Progressing"),
    "new": ("Current", "Progressing"),
}


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.yaml")), ids=lambda p: p.stem)
def test_kstatus_and_argocd_agree_with_the_pool(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    assert (kstatus(obj), health("WorkerPool", obj)[0]) == EXPECTED[path.stem]
    if "status" not in obj:
        return
    status = obj["status"]
    ready = get_condition_dict(status, "Ready")
    # Current to kstatus exactly when the pool says it is Ready (same generation).
    observed = status["observedGeneration"] == obj["metadata"]["generation"]
    assert (kstatus(obj) == "Current") == (ready["status"] == "True" and observed)
    for condition in status["conditions"]:
        assert condition["observedGeneration"] == status["observedGeneration"]
        if condition["type"] in ("Reconciling", "Stalled"):
            assert condition["status"] == "True", "abnormal-true conditions only while True"


def get_condition_dict(status: dict[str, Any], type_: str) -> dict[str, Any]:
    found = [c for c in status["conditions"] if c["type"] == type_]
    assert len(found) == 1, (type_, status["conditions"])
    return found[0]


HASH = "6d5f8c7b9a"
NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
CRASH = Trouble(
    "WorkerCrashLoop",
    "worker resize-b exited with code 1 (ModuleNotFoundError: No module named "
    "'media_worker'); replaced in 40s",
)


def pod(name: str, hash_: str = HASH, *, ready: bool = True, phase: str = "Running") -> PodView:
    return PodView(name, hash_, phase, ready, terminating=False, busy=False, created=0.0)


#: How each fixture's status came about: (pods, trouble, generation the status is for).
SCENARIOS: dict[str, tuple[list[PodView], Trouble | None, int]] = {
    "healthy": ([pod("resize-a"), pod("resize-b")], None, 3),
    "paused": ([pod("resize-a"), pod("resize-b")], None, 3),
    "rolling": ([pod("resize-a"), pod("resize-old", "0123456789")], None, 3),
    "starting": ([pod("resize-a"), pod("resize-b", ready=False)], None, 3),
    "crashloop": ([pod("resize-a"), pod("resize-b", ready=False, phase="Failed")], CRASH, 3),
    "generation-not-observed": ([pod("resize-a"), pod("resize-b")], None, 3),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_fixture_is_what_pool_status_writes(name: str) -> None:
    """So that the fixtures cannot drift from what the operator writes."""
    obj = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    pods, trouble, generation = SCENARIOS[name]
    spec_of = {k: v for k, v in obj.items() if k != "status"}
    spec_of["metadata"] = {**obj["metadata"], "generation": generation}
    pool = WorkerPool.model_validate(spec_of)
    status = pool_status(pool, template_hash=HASH, pods=pods, trouble=trouble, now=NOW)
    assert status.model_dump(mode="json", by_alias=True, exclude_none=True) == obj["status"]
