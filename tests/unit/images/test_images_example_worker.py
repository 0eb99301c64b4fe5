"""The worker app of examples/worker-image: loadable as the operator runs it, and its skills."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker_runtime import FatalError, Worker
from worker_runtime.cli import load_app

APP_DIR = Path(__file__).resolve().parents[3] / "examples" / "worker-image"


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    """`--app app:worker` from the image's WORKDIR, as the operator's command does it."""
    monkeypatch.chdir(APP_DIR)
    monkeypatch.syspath_prepend(str(APP_DIR))
    yield load_app("app:worker")
    sys.modules.pop("app", None)


def _call(worker: Worker, skill: str, params: dict) -> object:
    found = worker.get_skill(skill)
    assert found is not None
    return found.func(found.parse_params(params))


def test_skills(worker: Worker) -> None:
    assert sorted(s.name for s in worker.skills) == ["add", "parse_yaml", "sleep"]


def test_parse_yaml(worker: Worker) -> None:
    text = "replicas: 3\nports: [80, 443]\n"
    assert _call(worker, "parse_yaml", {"text": text}) == {"replicas": 3, "ports": [80, 443]}
    with pytest.raises(FatalError, match="not valid YAML"):
        _call(worker, "parse_yaml", {"text": "a: [1, 2"})


def test_add(worker: Worker) -> None:
    assert _call(worker, "add", {"a": 2, "b": 40}) == 42
