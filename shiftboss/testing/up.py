"""``python -m shiftboss.testing up`` (``make local-cluster``): a local control plane to
try Shiftboss by hand, as on a kind cluster.

It loads the checkout's example images into the process node (as ``kind load
docker-image`` would), writes an admin kubeconfig, prints the ``export`` lines that put
that kubeconfig and the matching kubectl and helm in a shell, and runs until SIGINT or
SIGTERM, then stops every process it started (exit 0).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType

from shiftboss.testing.cluster import ClusterStartError, LocalCluster, find_binaries
from shiftboss.testing.helm import find_helm
from shiftboss.testing.processes import ManagedProcess

ROOT = Path(__file__).resolve().parents[2]  # the checkout
#: The images the checkout's examples run, loaded by default: image -> its build context.
#: The tag is the one examples/worker-image/pool.yaml names (a unit test holds them equal).
EXAMPLE_IMAGES = {
    "ghcr.io/shiftboss/shiftboss-example-worker:0.1.0": ROOT / "examples" / "worker-image",
    "shiftboss-demo:dev": ROOT / "examples",  # examples/pool.yaml, make demo
}
#: First line of the kubeconfig ``up`` writes: only such a file is overwritten or removed.
MARKER = "# written by `python -m shiftboss.testing up`; removed when it stops\n"


def default_kubeconfig() -> Path:
    cache = Path(os.environ.get("SHIFTBOSS_CACHE", Path.home() / ".cache" / "shiftboss"))
    return cache / "local-cluster" / "kubeconfig"


def image_arg(text: str) -> tuple[str, Path]:
    """``IMAGE=DIR`` (argparse type)."""
    image, sep, directory = text.partition("=")
    if not (sep and image and directory):
        raise argparse.ArgumentTypeError(f"expected IMAGE=DIR, got {text!r}")
    return image, Path(directory)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m shiftboss.testing",
        description="The local control plane (etcd, kube-apiserver, controllers, scheduler "
        "and a process node that runs pods as local processes).",
    )
    commands = p.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up",
        help="start a local cluster and run it until Ctrl-C",
        description="Start a local cluster with the checkout's example images loaded "
        f"({', '.join(EXAMPLE_IMAGES)}), print the export lines for a shell and run until "
        "SIGINT or SIGTERM.",
    )
    up.add_argument(
        "--kubeconfig",
        type=Path,
        default=default_kubeconfig(),
        help="where to write the admin kubeconfig (default: %(default)s)",
    )
    up.add_argument(
        "--load-image",
        metavar="IMAGE=DIR",
        type=image_arg,
        action="append",
        default=[],
        help="run containers of IMAGE without a workingDir in DIR, as if the image "
        "were loaded (repeatable; the example images are loaded anyway)",
    )
    up.add_argument(
        "--crds",
        action="store_true",
        help="apply crds/ first (off by default: the Helm chart installs them)",
    )
    return p


def images_to_load(extra: Sequence[tuple[str, Path]]) -> dict[str, Path]:
    """The example images found in this checkout, then ``extra`` (which wins)."""
    found = {image: d for image, d in EXAMPLE_IMAGES.items() if d.is_dir()}
    return {**found, **{image: d.resolve() for image, d in extra}}


def exports(kubeconfig: Path, kubectl_dir: Path, helm_dir: Path | None) -> list[str]:
    """The shell lines that point kubectl and helm at the cluster."""
    dirs = [kubectl_dir] if helm_dir is None else [kubectl_dir, helm_dir]
    path = ":".join(shlex.quote(str(d)) for d in dirs)
    return [f"export KUBECONFIG={shlex.quote(str(kubeconfig))}", f"export PATH={path}:$PATH"]


@contextlib.contextmanager
def kubeconfig_slot(path: Path) -> Iterator[None]:
    """Hold ``path`` for one ``up`` (a lock beside it) and remove the kubeconfig at the end.
    A file there that ``up`` did not write (a user's own kubeconfig) is never touched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"error: another local cluster is using {path}") from None
        if path.exists() and not path.read_text().startswith(MARKER):
            raise SystemExit(f"error: {path} exists and was not written by `up`: choose another")
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def write_kubeconfig(cluster: LocalCluster, path: Path) -> None:
    path.unlink(missing_ok=True)  # created anew, readable by its owner only from the start
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(MARKER + cluster.kubeconfig.read_text())


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM stops as Ctrl-C does, and SIGINT even if inherited ignored


def interrupt_on_signals() -> None:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` (in the main thread)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)


def ignore_signals() -> None:
    """While stopping: a second Ctrl-C must not cut the clean-up short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def run_until_stopped(
    cluster: LocalCluster,
    also: Sequence[ManagedProcess] = (),
    every_second: Callable[[], None] | None = None,
) -> int:
    """Wait for SIGINT or SIGTERM (0), or for a component (or one of ``also``) to die (1),
    calling ``every_second`` meanwhile. Install ``interrupt_on_signals()`` first."""
    try:
        while True:
            dead = [p for p in [*cluster.processes, *also] if not p.running()]
            if dead:
                for proc in dead:
                    print(f"error: {proc.name} exited ({proc.exit_code()}):", file=sys.stderr)
                    print(proc.tail(15), file=sys.stderr)
                cluster.failed = True  # keeps the logs
                return 1
            if every_second is not None:
                every_second()
            time.sleep(1)
    except KeyboardInterrupt:
        return 0


def up(args: argparse.Namespace) -> int:
    try:
        bin_dir = find_binaries()
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        helm_dir: Path | None = find_helm().parent
    except FileNotFoundError as exc:
        helm_dir = None
        print(f"note: {exc}", file=sys.stderr)
    images = images_to_load(args.load_image)
    crds = [ROOT / "crds"] if args.crds else None
    interrupt_on_signals()
    kubeconfig = args.kubeconfig.absolute()  # the export line works from any directory
    with kubeconfig_slot(kubeconfig):
        cluster = LocalCluster(bin_dir=bin_dir, crds=crds, images=images)
        try:
            cluster.start()
            write_kubeconfig(cluster, kubeconfig)
            print(f"Local cluster up: API server {cluster.server}, node {cluster.node_name}.")
            for image, directory in images.items():
                print(f"Image {image} loaded from {directory}.")
            print(f"Service CIDR {cluster.service_cidr}; component logs in {cluster.logs}.")
            print("Paste into a shell:\n")
            print("\n".join(exports(kubeconfig, bin_dir, helm_dir)))
            print("\nCtrl-C stops the cluster.", flush=True)
            return run_until_stopped(cluster)
        except KeyboardInterrupt:  # while starting
            return 0
        except ClusterStartError as exc:
            print(f"error: the local cluster did not start: {exc}", file=sys.stderr)
            return 1
        finally:
            ignore_signals()
            cluster.stop()
            print("Local cluster stopped.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    for image, directory in args.load_image:
        if not directory.is_dir():
            cli.error(f"--load-image {image}={directory}: not a directory")
    return up(args)
