"""Static checks of the Dockerfiles (the images themselves are built only by the kind
workflow, .github/workflows/e2e-kind.yml: this machine has no Docker engine)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from images_dockerfile import Dockerfile, DockerIgnore, copy_sources, parse, pinned

ROOT = Path(__file__).resolve().parents[3]
OPERATOR = ROOT / "images" / "operator" / "Dockerfile"
WORKER = ROOT / "images" / "worker" / "Dockerfile"
EXAMPLE = ROOT / "examples" / "worker-image" / "Dockerfile"
GO_SMOKE = ROOT / "sdk" / "go" / "examples" / "smoke" / "Dockerfile"
ALL = [OPERATOR, WORKER, EXAMPLE, GO_SMOKE]
#: Each Dockerfile's build context (what its COPY sources are relative to).
CONTEXT = {OPERATOR: ROOT, WORKER: ROOT, EXAMPLE: EXAMPLE.parent, GO_SMOKE: ROOT / "sdk" / "go"}
PYTHON_IMAGES = [OPERATOR, WORKER]
NON_ROOT_UID = 65532


def _project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_every_base_is_pinned(path: Path) -> None:
    dockerfile = parse(path)
    for stage in dockerfile.stages:
        if stage.base in dockerfile.stage_names():
            continue  # FROM an earlier stage
        assert pinned(stage.base), (
            f"{_id(path)}:{stage.line}: FROM {stage.base} is not pinned to an exact version "
            "tag (e.g. 3.11.17-slim-bookworm) or a sha256 digest"
        )


@pytest.mark.parametrize(
    "image",
    ["python", "python:3.11", "python:3.11-slim", "python:latest", "golang:1.26", "x/y:nonroot"],
)
def test_pinned_refuses_floating_references(image: str) -> None:
    assert not pinned(image)


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_final_stage_runs_as_numeric_non_root(path: Path) -> None:
    user = parse(path).final.last("USER")
    assert user is not None, f"{_id(path)}: the final stage sets no USER (it would run as root)"
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user.value)
    assert match, (
        f"{_id(path)}:{user.line}: USER {user.value} is not numeric (runAsNonRoot needs a uid)"
    )
    uid, gid = match.group(1), match.group(2) or match.group(1)
    assert (int(uid), int(gid)) == (NON_ROOT_UID, NON_ROOT_UID), f"USER {user.value}"


@pytest.mark.parametrize(
    ("path", "entrypoint", "cmd"),
    [
        (OPERATOR, ["shiftboss"], ["run"]),
        (WORKER, ["shiftboss-worker"], ["run"]),
        # The operator starts worker pods as `shiftboss-worker run --app ...`.
        (GO_SMOKE, ["shiftboss-worker"], None),
    ],
    ids=lambda value: _id(value) if isinstance(value, Path) else None,
)
def test_entrypoint(path: Path, entrypoint: list[str], cmd: list[str] | None) -> None:
    final = parse(path).final
    found = final.last("ENTRYPOINT")
    assert found is not None and found.exec_form() == entrypoint
    found_cmd = final.last("CMD")
    assert (found_cmd.exec_form() if found_cmd else None) == cmd


def test_example_image_keeps_the_base_entrypoint_and_starts_from_this_version() -> None:
    example = parse(EXAMPLE)
    assert not example.final.all("ENTRYPOINT") and not example.final.all("CMD")
    base = example.args["WORKER_BASE"]
    assert base == f"ghcr.io/shiftboss/shiftboss-worker:{_project_version()}", base


@pytest.mark.parametrize("path", PYTHON_IMAGES, ids=_id)
def test_python_images_install_only_hash_pinned_packages(path: Path) -> None:
    dockerfile = parse(path)
    installs = [
        command
        for stage in dockerfile.stages
        for run in stage.all("RUN")
        for command in run.commands()
        if "pip install" in command
    ]
    assert installs
    for command in installs:
        from_lock = "--require-hashes" in command and " -r " in command
        own_wheel = "--no-deps --no-index" in command and "/dist/" in command
        assert from_lock or own_wheel, f"{_id(path)}: an unpinned install: {command}"
        for lock in re.findall(r"-r (\S+)", command):
            assert (CONTEXT[path] / lock).is_file(), f"{_id(path)}: {lock} does not exist"


@pytest.mark.parametrize("path", PYTHON_IMAGES, ids=_id)
def test_python_images_copy_the_venv_between_stages_of_one_base(path: Path) -> None:
    """The venv's interpreter links point into the base image: both stages need the same."""
    dockerfile = parse(path)
    builder, final = dockerfile.stages
    assert builder.base == final.base
    copies = [c.value for c in final.all("COPY")]
    assert copies == [f"--from={builder.name} /opt/shiftboss /opt/shiftboss"]
    env = " ".join(e.value for e in final.all("ENV"))
    assert "PATH=/opt/shiftboss/bin:$PATH" in env and "HOME=/tmp" in env


def test_worker_base_has_workdir_app() -> None:
    workdir = parse(WORKER).final.last("WORKDIR")
    assert workdir is not None and workdir.value == "/app"


def _context_copies(dockerfile: Dockerfile) -> list[str]:
    return [
        source
        for stage in dockerfile.stages
        for copy in stage.all("COPY")
        if "--from" not in copy.value
        for source in copy_sources(copy)
    ]


@pytest.mark.parametrize("path", ALL, ids=_id)
def test_copy_sources_exist_in_the_context(path: Path) -> None:
    for source in _context_copies(parse(path)):
        if source == ".":
            continue
        assert (CONTEXT[path] / source).exists(), f"{_id(path)}: COPY {source}: no such path"


@pytest.mark.parametrize("path", PYTHON_IMAGES, ids=_id)
def test_dockerignore_keeps_what_the_python_images_copy(path: Path) -> None:
    ignore = DockerIgnore(ROOT / ".dockerignore")
    for source in _context_copies(parse(path)):
        assert ignore.kept(source), f".dockerignore drops {source}, which {_id(path)} copies"


def test_dockerignore_drops_local_state() -> None:
    ignore = DockerIgnore(ROOT / ".dockerignore")
    for path in (".venv/bin/python", ".git/HEAD", "bench-results/bench.json", "tests/unit"):
        assert not ignore.kept(path), path
    assert not ignore.kept("shiftboss/__pycache__/cli.cpython-311.pyc")
    assert ignore.kept("shiftboss/cli.py")


def test_python_images_share_the_base_the_locks_were_compiled_for() -> None:
    """The locks resolve for one Python minor version: the one of the base image."""
    bases = {stage.base for path in PYTHON_IMAGES for stage in parse(path).stages}
    assert len(bases) == 1, bases
    minor = re.match(r"python:(\d+\.\d+)\.\d+-", bases.pop())
    assert minor
    for lock in (ROOT / "images").glob("requirements-*.lock"):
        assert f"pip-compile with Python {minor.group(1)}" in lock.read_text(), lock.name
