"""The local control plane's binaries (kube-apiserver, kube-controller-manager,
kube-scheduler, kubectl, etcd), built from their Go modules into a cache keyed by the
pinned versions (``versions.env`` beside this module), once.

``make control-plane`` (through ``hack/build-control-plane.sh``) and ``shiftboss dev``
both run this code; it needs only the standard library and Go, so that a fresh checkout
can build before any virtualenv exists: ``python3 -P shiftboss/testing/binaries.py``
prints the bin directory on its last line (``-P``: this directory's ``operator.py``
must not shadow the standard library's).

k8s.io/kubernetes cannot be ``go install``ed: its go.mod replaces the staging modules
(k8s.io/api, ...) with ./staging paths, and a dependency's replace lines are ignored.
So it is built through a small wrapper module that requires it and replaces every
staging module with the published v0.<minor>.<patch> release. etcd gets a wrapper
module of its own so that its dependencies never skew Kubernetes' ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
VERSIONS_FILE = Path(__file__).with_name("versions.env")
KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
#: Lines of ``go build -v`` worth showing: errors, not the name of every package compiled.
_WORTH_SHOWING = re.compile(r"^#|\.go:\d+:|^go: ")
#: A heartbeat every this many compiled packages (Kubernetes compiles a few thousand).
HEARTBEAT_PACKAGES = 100


class BuildError(RuntimeError):
    """The binaries could not be built; the message says why and what to do."""


class BuildReport(Protocol):
    """Where a build tells what it does (a terminal status line, or plain log lines)."""

    def step(self, message: str) -> None:
        """A new step starts."""

    def progress(self, message: str) -> None:
        """The current step advanced (packages compiled so far)."""

    def output(self, line: str) -> None:
        """A line of a tool's output worth showing (a compiler error, a download)."""


class PlainReport:
    """Time-stamped lines on stderr: for logs, CI, and terminals without ``rich``."""

    def _say(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    def step(self, message: str) -> None:
        self._say(message)

    def progress(self, message: str) -> None:
        self._say(f"  {message}")

    def output(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)


def pinned_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of ``versions.env``."""
    pinned = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            pinned[key.strip()] = value.strip()
    return pinned


def cache_root() -> Path:
    """``$SHIFTBOSS_CACHE``, else ``$XDG_CACHE_HOME/shiftboss``, else ``~/.cache/shiftboss``."""
    explicit = os.environ.get("SHIFTBOSS_CACHE")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "shiftboss"


def pinned_dir(versions: dict[str, str] | None = None) -> Path:
    """The cache entry of the pinned versions (its ``bin/`` holds the binaries)."""
    v = versions or pinned_versions()
    return cache_root() / f"k8s-v{v['KUBE_VERSION']}-etcd-v{v['ETCD_VERSION']}"


def has_binaries(bin_dir: Path) -> bool:
    return all((bin_dir / b).is_file() for b in BINARIES)


def is_complete(out: Path) -> bool:
    """A finished build: every binary, and the marker written after the last one."""
    return has_binaries(out / "bin") and (out / ".complete").is_file()


def ensure_binaries(report: BuildReport | None = None) -> Path:
    """The bin directory of the control plane, built first when it is not cached.

    ``$SHIFTBOSS_K8S_BIN`` names a directory to use as it is (an error if it lacks a
    binary), unless it is the pinned cache entry itself, which is built as usual."""
    out = pinned_dir()
    explicit = os.environ.get("SHIFTBOSS_K8S_BIN")
    if explicit and Path(explicit).resolve() != (out / "bin").resolve():
        if has_binaries(Path(explicit)):
            return Path(explicit)
        raise BuildError(
            f"SHIFTBOSS_K8S_BIN={explicit} lacks some of {', '.join(BINARIES)}: "
            "unset it to build them into the cache, or point it at a complete directory"
        )
    if not is_complete(out):
        build(out, pinned_versions(), report or PlainReport())
    return out / "bin"


@contextlib.contextmanager
def _build_lock(out: Path, report: BuildReport) -> Iterator[None]:
    """One build of an entry at a time (two ``shiftboss dev`` started together)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report.step(f"another process is building into {out}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build(out: Path, versions: dict[str, str], report: BuildReport) -> None:
    """Build every binary into ``out/bin`` and mark the entry complete."""
    go = shutil.which("go")
    if go is None:
        raise BuildError(
            "Go is required to build the local control plane once (https://go.dev/dl); "
            "or set SHIFTBOSS_K8S_BIN to a directory holding " + ", ".join(BINARIES)
        )
    with _build_lock(out, report):
        if is_complete(out):  # the other process finished it
            return
        started = time.monotonic()
        kube = _Go(go, out / "src" / "kube", report)
        gomod, commit = _kube_wrapper_module(kube, versions["KUBE_VERSION"], report)
        _build_kubernetes(kube, versions["KUBE_VERSION"], commit, out / "bin", report)
        etcd = _Go(go, out / "src" / "etcd", report)
        _build_etcd(etcd, versions["ETCD_VERSION"], gomod, out / "bin", report)
        (out / ".complete").touch()
        report.step(f"control plane built in {time.monotonic() - started:.0f}s into {out / 'bin'}")


class _Go:
    """``go`` in one wrapper module's directory, its output streamed to the report."""

    def __init__(self, go: str, cwd: Path, report: BuildReport) -> None:
        self.go, self.cwd, self.report = go, cwd, report
        cwd.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}

    def output(self, *args: str) -> str:
        result = subprocess.run(
            [self.go, *args], cwd=self.cwd, env=self.env, capture_output=True, text=True
        )
        if result.returncode:
            raise BuildError(f"go {' '.join(args)} failed:\n{result.stderr.strip()}")
        return result.stdout

    def stream(self, *args: str, what: str, heartbeat: bool = False) -> None:
        """Run ``go ARGS``, showing errors, and a count of compiled packages if asked."""
        proc = subprocess.Popen(
            [self.go, *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        shown: list[str] = []
        try:
            assert proc.stdout is not None
            for n, raw in enumerate(proc.stdout, start=1):
                line = raw.rstrip("\n")
                if not heartbeat or _WORTH_SHOWING.search(line):
                    self.report.output(line)
                    shown.append(line)
                elif n % HEARTBEAT_PACKAGES == 0:
                    self.report.progress(f"{what}: {n} packages compiled")
            code = proc.wait()
        finally:
            if proc.poll() is None:  # interrupted: end our own child
                proc.kill()
                proc.wait()
        if code:
            tail = "\n".join(shown[-20:])
            raise BuildError(f"{what}: go {args[0]} failed (exit {code})\n{tail}".rstrip())


def _kube_wrapper_module(go: _Go, version: str, report: BuildReport) -> tuple[str, str]:
    """Write the wrapper module of k8s.io/kubernetes; returns the upstream go.mod's text
    and the commit of the release (for ``kubectl version``)."""
    kver = f"v{version}"
    report.step(
        f"building Kubernetes {kver} ({', '.join(KUBE_COMMANDS)}); a cold build takes "
        "tens of minutes on two cores, once"
    )
    report.step(f"downloading the k8s.io/kubernetes {kver} module")
    info = json.loads(go.output("mod", "download", "-json", f"k8s.io/kubernetes@{kver}"))
    if info.get("Error") or not Path(info.get("GoMod", "")).is_file():
        raise BuildError(f"could not download k8s.io/kubernetes@{kver}: {info.get('Error')}")
    upstream = Path(info["GoMod"]).read_text()
    (go.cwd / "go.mod").write_text(wrapper_gomod(upstream, version))
    (go.cwd / "tools.go").write_text("//go:build tools\n\npackage tools\n")
    return upstream, info.get("Origin", {}).get("Hash") or "0" * 40


def wrapper_gomod(upstream: str, version: str) -> str:
    """The wrapper module's go.mod: k8s.io/kubernetes required, and every
    ``k8s.io/X => ./staging/src/k8s.io/X`` line of its go.mod turned into
    ``k8s.io/X => k8s.io/X v0.<minor>.<patch>``."""
    staging = "v0." + version.split(".", 1)[1]
    lines = ["module shiftboss.local/kube-build", "", _directive(upstream, "go")]
    godebug = _directive(upstream, "godebug", required=False)
    lines += [godebug] if godebug else []
    lines += ["", f"require k8s.io/kubernetes v{version}", "", "replace ("]
    for line in upstream.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == "=>" and fields[2].startswith("./staging/"):
            lines.append(f"\t{fields[0]} => {fields[0]} {staging}")
    return "\n".join([*lines, ")", ""])


def _directive(gomod: str, name: str, *, required: bool = True) -> str:
    for line in gomod.splitlines():
        if line.startswith(f"{name} "):
            return line
    if required:
        raise BuildError(f"the k8s.io/kubernetes go.mod has no {name!r} line")
    return ""


def _build_kubernetes(
    go: _Go, version: str, commit: str, bin_dir: Path, report: BuildReport
) -> None:
    kver = f"v{version}"
    packages = [f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS]
    report.step("resolving Kubernetes' dependencies")
    go.stream("get", *(f"{p}@{kver}" for p in packages), what="resolving dependencies")
    minor = version.split(".")[1]
    build_date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ldflags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        for key, value in (
            ("gitVersion", kver),
            ("gitMajor", "1"),
            ("gitMinor", minor),
            ("gitCommit", commit),
            ("gitTreeState", "clean"),
            ("buildDate", build_date),
        ):
            ldflags.append(f"-X {pkg}.{key}={value}")
    report.step("compiling Kubernetes (all four in one go build, so shared packages compile once)")
    bin_dir.mkdir(parents=True, exist_ok=True)
    go.stream(
        "build", "-v", "-trimpath", "-tags", "selinux,notest", "-ldflags", " ".join(ldflags),
        "-o", f"{bin_dir}/", *packages,
        what="kubernetes", heartbeat=True,
    )  # fmt: skip


def _build_etcd(go: _Go, version: str, kube_gomod: str, bin_dir: Path, report: BuildReport) -> None:
    report.step(f"building etcd v{version}")
    (go.cwd / "go.mod").write_text(
        f"module shiftboss.local/etcd-build\n\n{_directive(kube_gomod, 'go')}\n"
    )
    go.stream("get", f"go.etcd.io/etcd/server/v3@v{version}", what="resolving etcd")
    go.stream(
        "build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(bin_dir / "etcd"),
        "go.etcd.io/etcd/server/v3",
        what="etcd", heartbeat=True,
    )  # fmt: skip


def main() -> int:
    """Build (or find cached) and print the bin directory on the last line."""
    report = PlainReport()
    try:
        bin_dir = ensure_binaries(report)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    report.step(f"control plane binaries: in {bin_dir}")
    print(bin_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
