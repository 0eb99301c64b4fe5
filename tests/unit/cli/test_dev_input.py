"""``shiftboss dev``'s input, checked before anything starts: the flags, the app (imported
once from the project directory, as the pool's workers will), the pool it declares and
the instructions it prints."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shiftboss.api.workerpool import WorkerPool
from shiftboss.cli import build_parser
from shiftboss.commands.dev import default_kubeconfig
from shiftboss.devloop.app import AppError, example_params, load_skills
from shiftboss.devloop.instructions import READY_LINE, DevInfo, render, submit_command
from shiftboss.devloop.reload import ProjectWatcher
from shiftboss.devloop.session import DEV_IMAGE, DevOptions, pool_manifest
from worker_runtime.protocol import SkillSpec

BIN = Path(sys.executable).parent

APP = """
from pydantic import BaseModel, Field
from worker_runtime import Worker

worker = Worker()


class Resize(BaseModel):
    url: str
    width: int = Field(gt=0)
    scale: float = Field(ge=0.5)
    sharp: bool
    note: str = "x"


@worker.skill()
def resize(params: Resize) -> dict:
    return {}
"""


def parse(*argv: str):
    return build_parser().parse_args(["dev", *argv])


def usage_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_defaults():
    args = parse("--app", "app:worker")
    assert (args.app, args.pool, args.replicas, args.namespace, args.port) == (
        "app:worker", "dev", 1, "default", None,
    )  # fmt: skip
    args = parse("--app", "pkg.mod:obj.worker", "--pool", "p1", "--replicas", "3", "-n", "team")
    assert (args.app, args.pool, args.replicas, args.namespace) == (
        "pkg.mod:obj.worker", "p1", 3, "team",
    )  # fmt: skip


def test_app_is_required(capsys):
    assert "the following arguments are required: --app" in usage_error(capsys)


@pytest.mark.parametrize("app", ["app", "app:", ":worker", "my-app:worker", "app:worker:x", "1a:w"])
def test_app_must_be_module_colon_attribute(capsys, app):
    err = usage_error(capsys, "--app", app)
    assert "argument --app: expected module:attribute" in err
    assert "e.g. app:worker" in err and repr(app) in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--pool", "Dev", "not a valid name"),
        ("--pool", "a" * 64, "not a valid name"),
        ("-n", "team_a", "not a valid name"),
        ("--replicas", "0", "from 1 to 16"),
        ("--replicas", "two", "from 1 to 16"),
        ("--port", "80", "from 1024 to 65535"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(capsys, flag, value, message):
    err = usage_error(capsys, "--app", "app:worker", flag, value)
    assert f"argument {flag}" in err and message in err


def test_load_skills_imports_the_app_from_the_project_directory(tmp_path):
    (tmp_path / "resizer.py").write_text(APP)
    skills = load_skills("resizer:worker", tmp_path)
    assert [s.name for s in skills] == ["resize"]
    assert example_params(skills[0]) == {"url": "example", "width": 1, "scale": 0.5, "sharp": True}


def test_a_missing_module_names_it_and_the_fix(tmp_path):
    with pytest.raises(AppError) as error:
        load_skills("nosuch.mod:worker", tmp_path)
    message = str(error.value)
    assert message.startswith(f"--app nosuch.mod:worker: cannot load it from {tmp_path}")
    assert "no module named 'nosuch'" in message
    assert "run `shiftboss dev` in the directory that holds nosuch/mod.py" in message


def test_an_app_that_fails_to_import_shows_its_error(tmp_path):
    (tmp_path / "broken.py").write_text("import not_installed_anywhere\n")
    with pytest.raises(AppError) as error:
        load_skills("broken:worker", tmp_path)
    assert "No module named 'not_installed_anywhere'" in str(error.value)


def test_a_wrong_attribute_or_object_is_named(tmp_path):
    (tmp_path / "resizer.py").write_text(APP + "\nnot_a_worker = 5\n")
    with pytest.raises(AppError, match="has no attribute 'wrkr'"):
        load_skills("resizer:wrkr", tmp_path)
    with pytest.raises(AppError, match=r"is a int, not a worker_runtime\.Worker"):
        load_skills("resizer:not_a_worker", tmp_path)


def test_an_app_without_skills_is_refused(tmp_path):
    (tmp_path / "empty.py").write_text("from worker_runtime import Worker\nworker = Worker()\n")
    with pytest.raises(AppError, match=r"has no skills; decorate a function with @worker.skill"):
        load_skills("empty:worker", tmp_path)


def test_a_bad_app_fails_before_any_control_plane_starts(tmp_path):
    # No binaries anywhere: reaching the control plane would fail differently.
    env = {**os.environ, "SHIFTBOSS_CACHE": str(tmp_path), "SHIFTBOSS_K8S_BIN": str(tmp_path)}
    started = time.monotonic()
    result = subprocess.run(
        [str(BIN / "shiftboss"), "dev", "--app", "nosuch:worker"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("shiftboss dev: --app nosuch:worker: cannot load it from")
    assert "SHIFTBOSS_K8S_BIN" not in result.stderr and "control plane" not in result.stderr
    assert time.monotonic() - started < 30
    assert not list(tmp_path.iterdir())  # no kubeconfig, no cache entry


def test_the_pool_runs_the_app_from_the_dev_image():
    manifest = pool_manifest(
        DevOptions(app="pkg.app:worker", project=Path("/src"), pool="p", replicas=2, namespace="t")
    )
    assert manifest == {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": "p", "namespace": "t"},
        "spec": {
            "image": DEV_IMAGE,
            "app": "pkg.app:worker",
            "replicas": 2,
            "drainTimeoutSeconds": 5,
        },
    }
    WorkerPool.model_validate(manifest)


def info(namespace: str = "default", prog: str = "shiftboss") -> DevInfo:
    skill = SkillSpec(
        name="add",
        input_schema={
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "minimum": 3}},
            "required": ["a", "b"],
        },
    )
    return DevInfo(
        app="calc:worker", project=Path("/src/calc"), pool="dev", namespace=namespace, replicas=1,
        skills=[skill, SkillSpec(name="ping")], kubeconfig=Path("/home/me/kc"),
        bin_dir=Path("/cache/bin"), logs=Path("/tmp/logs"), prog=prog,
    )  # fmt: skip


def test_the_instructions_name_the_pool_the_skills_and_the_kubeconfig():
    text = render(info()).splitlines()
    assert text[0] == (
        "Pool 'dev' is ready in namespace 'default': 1 worker running calc:worker from /src/calc."
    )
    assert "Skills: add, ping." in text
    assert "  export KUBECONFIG=/home/me/kc" in text
    assert "  export PATH=/cache/bin:$PATH" in text
    assert "  shiftboss submit dev add -p a=1 -p b=3 --wait" in text
    assert "  shiftboss submit dev ping --wait" in text
    assert "  kubectl create -f - <<'EOF'" in text and "    generateName: add-" in text
    assert any(line.startswith("Saving a *.py file under /src/calc restarts") for line in text)
    assert text[-1] == READY_LINE
    # Without reloading, the instructions say how to restart the workers by hand.
    manual = render(dataclasses.replace(info(), reload=False)).splitlines()
    assert "  kubectl delete pods -l shiftboss.io/pool=dev" in manual
    assert not any(line.startswith("Saving a *.py") for line in manual)


def test_the_instructions_carry_the_namespace_and_the_program_name():
    assert submit_command(info("team", "kubectl shiftboss"), info().skills[0]) == (
        "kubectl shiftboss submit dev add -p a=1 -p b=3 --wait -n team"
    )
    assert "  kubectl get -n team sbj,wp,pods" in render(info("team")).splitlines()


def test_each_project_directory_gets_its_own_kubeconfig(monkeypatch, tmp_path):
    monkeypatch.setenv("SHIFTBOSS_CACHE", str(tmp_path))
    one, other = default_kubeconfig(Path("/a/proj")), default_kubeconfig(Path("/b/proj"))
    assert one != other and one.parent.parent == tmp_path / "dev"
    assert one == default_kubeconfig(Path("/a/proj")) and one.parent.name.startswith("proj-")


def test_the_watcher_reports_added_changed_and_removed_python_files(tmp_path):
    (tmp_path / "app.py").write_text("x = 1\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    for skipped in (".venv", "__pycache__", "node_modules"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "mod.py").write_text("")
    watcher = ProjectWatcher(tmp_path)
    assert watcher.changed() == []

    os.utime(tmp_path / "app.py", ns=(1, 10**18))  # as an editor's save moves the time
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "skills.py").write_text("")
    (tmp_path / "notes.txt").write_text("edited\n")
    for skipped in (".venv", "__pycache__", "node_modules"):
        (tmp_path / skipped / "mod.py").write_text("changed")
    assert watcher.changed() == [Path("app.py"), Path("pkg/skills.py")]
    assert watcher.changed() == []

    (tmp_path / "pkg" / "skills.py").unlink()
    assert watcher.changed() == [Path("pkg/skills.py")]


def test_the_watcher_stops_at_its_limit_and_says_so(tmp_path):
    for i in range(5):
        (tmp_path / f"m{i}.py").write_text("")
    watcher = ProjectWatcher(tmp_path, limit=3)
    assert watcher.truncated
    assert not ProjectWatcher(tmp_path, limit=5).truncated
