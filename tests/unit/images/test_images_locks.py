"""The images' hash-pinned locks: complete, hashed, and in step with pyproject.toml."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[3]
IMAGES = ROOT / "images"
EXAMPLE = ROOT / "examples" / "worker-image"
LOCKS = [
    IMAGES / "requirements-operator.lock",
    IMAGES / "requirements-worker.lock",
    IMAGES / "requirements-build.lock",
    EXAMPLE / "requirements.txt",
]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
_HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def _requirements(text: str) -> list[tuple[str, list[str]]]:
    """Each requirement of a pip lock as (the `name==version` part, its options)."""
    entries: list[tuple[str, list[str]]] = []
    logical = re.sub(r"\\\n", " ", text)
    for raw in logical.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        entries.append((words[0], words[1:]))
    return entries


def _pins(path: Path) -> dict[str, Version]:
    pins = {}
    for requirement, _ in _requirements(path.read_text()):
        match = _PIN.match(requirement)
        assert match, f"{path.name}: {requirement} is not pinned with =="
        pins[canonicalize_name(match.group(1))] = Version(match.group(2))
    return pins


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("lock", LOCKS, ids=_id)
def test_every_requirement_is_pinned_with_hashes(lock: Path) -> None:
    entries = _requirements(lock.read_text())
    assert entries, f"{_id(lock)} is empty"
    for requirement, options in entries:
        assert _PIN.match(requirement), f"{_id(lock)}: {requirement} is not pinned with =="
        hashes = [o for o in options if o.startswith("--hash")]
        assert hashes, f"{_id(lock)}: {requirement} has no --hash"
        assert all(_HASH.match(h) for h in hashes), f"{_id(lock)}: {requirement}: {hashes}"
        assert len(hashes) == len(options), f"{_id(lock)}: {requirement}: unexpected {options}"


def test_requirement_reader_sees_a_missing_hash() -> None:
    text = "a==1.0 \\\n    --hash=sha256:" + "0" * 64 + "\n    # via x\nb==2.0\n"
    assert _requirements(text) == [("a==1.0", ["--hash=sha256:" + "0" * 64]), ("b==2.0", [])]


def _assert_satisfies(lock: Path, requirements: list[str]) -> None:
    pins = _pins(lock)
    for spec in map(Requirement, requirements):
        name = canonicalize_name(spec.name)
        if name == "shiftboss":
            continue  # the project itself is built from source in the image
        assert name in pins, f"{_id(lock)} lacks {spec} (re-lock: docs/images.md)"
        assert pins[name] in spec.specifier, f"{_id(lock)}: {name}=={pins[name]} breaks {spec}"


def test_worker_lock_holds_the_runtime_dependencies_only() -> None:
    lock = IMAGES / "requirements-worker.lock"
    project = _pyproject()["project"]
    _assert_satisfies(lock, project["dependencies"])
    operator_only = {
        canonicalize_name(Requirement(r).name) for r in project["optional-dependencies"]["operator"]
    }
    assert not operator_only & set(_pins(lock)), "the worker base would carry operator packages"


def test_operator_lock_holds_the_operator_extra() -> None:
    project = _pyproject()["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["operator"]
    _assert_satisfies(IMAGES / "requirements-operator.lock", requirements)


def test_build_lock_holds_the_build_backend() -> None:
    _assert_satisfies(IMAGES / "requirements-build.lock", _pyproject()["build-system"]["requires"])


def test_example_requirements_are_locked() -> None:
    wanted = [
        line.strip()
        for line in (EXAMPLE / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    _assert_satisfies(EXAMPLE / "requirements.txt", wanted)
