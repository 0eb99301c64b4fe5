"""The control plane build (``shiftboss.testing.binaries``) that ``make control-plane``
and ``shiftboss dev`` share, against a fake ``go`` that records what it is asked to do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shiftboss.testing import binaries
from shiftboss.testing.binaries import BINARIES, BuildError, ensure_binaries, pinned_versions

ROOT = Path(__file__).resolve().parents[3]
UPSTREAM_GOMOD = """module k8s.io/kubernetes

go 1.26.0

godebug default=go1.26

require k8s.io/api v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tgithub.com/other/mod => github.com/other/mod v1.2.3
)
"""

FAKE_GO = """#!{python}
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ["FAKE_GO_LOG"], "a") as log:
    log.write(json.dumps({{"args": args, "cwd": os.getcwd(),
                          "toolchain": os.environ.get("GOTOOLCHAIN")}}) + "\\n")
if args[:2] == ["mod", "download"]:
    print(json.dumps({{"GoMod": os.environ["FAKE_GO_MOD"], "Origin": {{"Hash": "abc123"}}}}))
elif args[0] == "get":
    print("go: added " + args[-1], file=sys.stderr)
elif args[0] == "build":
    for n in range(250):
        print(f"example.com/pkg{{n}}")
    if os.environ.get("FAKE_GO_FAIL"):
        print("# k8s.io/thing\\nthing.go:12: undefined: x")
        sys.exit(1)
    out = args[args.index("-o") + 1]
    targets = [Path(out) / a.rsplit("/", 1)[-1] for a in args if a.startswith("k8s.io/kubernetes/cmd/")]
    for target in targets if out.endswith("/") else [Path(out)]:
        target.write_text("binary")
"""


class Recorder:
    def __init__(self) -> None:
        self.steps: list[str] = []
        self.progressed: list[str] = []
        self.shown: list[str] = []

    def step(self, message: str) -> None:
        self.steps.append(message)

    def progress(self, message: str) -> None:
        self.progressed.append(message)

    def output(self, line: str) -> None:
        self.shown.append(line)


@pytest.fixture
def fake_go(tmp_path, monkeypatch) -> Path:
    tools = tmp_path / "tools"
    tools.mkdir()
    go = tools / "go"
    go.write_text(FAKE_GO.format(python=sys.executable))
    go.chmod(0o755)
    (tmp_path / "upstream.mod").write_text(UPSTREAM_GOMOD)
    log = tmp_path / "go.log"
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GO_LOG", str(log))
    monkeypatch.setenv("FAKE_GO_MOD", str(tmp_path / "upstream.mod"))
    monkeypatch.setenv("SHIFTBOSS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SHIFTBOSS_K8S_BIN", raising=False)
    return log


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_builds_every_binary_once_into_the_pinned_cache_entry(fake_go, tmp_path):
    report = Recorder()
    bin_dir = ensure_binaries(report)
    v = pinned_versions()
    out = tmp_path / "cache" / f"k8s-v{v['KUBE_VERSION']}-etcd-v{v['ETCD_VERSION']}"
    assert bin_dir == out / "bin"
    assert sorted(p.name for p in bin_dir.iterdir()) == sorted(BINARIES)
    assert (out / ".complete").is_file()

    wrapper = (out / "src" / "kube" / "go.mod").read_text()
    minor_patch = v["KUBE_VERSION"].split(".", 1)[1]
    assert f"\tk8s.io/api => k8s.io/api v0.{minor_patch}\n" in wrapper
    assert f"\tk8s.io/client-go => k8s.io/client-go v0.{minor_patch}\n" in wrapper
    assert "github.com/other" not in wrapper and "go 1.26.0\ngodebug default=go1.26\n" in wrapper
    assert (out / "src" / "etcd" / "go.mod").read_text().endswith("\ngo 1.26.0\n")

    build = next(c for c in calls(fake_go) if c["args"][0] == "build")
    ldflags = build["args"][build["args"].index("-ldflags") + 1]
    assert f"-X k8s.io/component-base/version.gitVersion=v{v['KUBE_VERSION']}" in ldflags
    assert "-X k8s.io/client-go/pkg/version.gitCommit=abc123" in ldflags
    assert {c["toolchain"] for c in calls(fake_go)} == {"local"}  # never downloads a Go

    assert any(s.startswith("compiling Kubernetes") for s in report.steps)
    assert any(s == f"building etcd v{v['ETCD_VERSION']}" for s in report.steps)
    assert "kubernetes: 200 packages compiled" in report.progressed
    assert not any(line.startswith("example.com/") for line in report.shown)  # only errors

    count = len(calls(fake_go))
    assert ensure_binaries(Recorder()) == bin_dir
    assert len(calls(fake_go)) == count  # cached: go is not run again


def test_a_failed_build_shows_the_compiler_error_and_is_not_marked_complete(
    fake_go, tmp_path, monkeypatch
):
    monkeypatch.setenv("FAKE_GO_FAIL", "1")
    with pytest.raises(BuildError) as error:
        ensure_binaries(Recorder())
    assert "kubernetes: go build failed (exit 1)" in str(error.value)
    assert "thing.go:12: undefined: x" in str(error.value)
    assert not list((tmp_path / "cache").glob("*/.complete"))


def test_without_go_the_error_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("SHIFTBOSS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SHIFTBOSS_K8S_BIN", raising=False)
    with pytest.raises(BuildError, match=r"Go is required .*https://go\.dev/dl"):
        ensure_binaries(Recorder())


def test_an_explicit_bin_directory_is_used_as_it_is(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBOSS_K8S_BIN", str(tmp_path))
    with pytest.raises(BuildError, match=f"SHIFTBOSS_K8S_BIN={tmp_path} lacks some of"):
        ensure_binaries(Recorder())
    for name in BINARIES:
        (tmp_path / name).write_text("")
    assert ensure_binaries(Recorder()) == tmp_path


def test_the_versions_have_one_source_shipped_in_the_package():
    link = ROOT / "hack" / "versions.env"
    assert link.resolve() == binaries.VERSIONS_FILE.resolve()
    assert set(pinned_versions()) >= {"KUBE_VERSION", "ETCD_VERSION", "HELM_VERSION"}


def test_the_script_runs_the_module_without_the_virtualenv(tmp_path):
    v = pinned_versions()
    bin_dir = tmp_path / f"k8s-v{v['KUBE_VERSION']}-etcd-v{v['ETCD_VERSION']}" / "bin"
    bin_dir.mkdir(parents=True)
    for name in BINARIES:
        (bin_dir / name).write_text("")
    (bin_dir.parent / ".complete").touch()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SHIFTBOSS_CACHE": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-control-plane.sh")],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == str(bin_dir)
