"""``shiftboss dev --app module:attr``: the job author's inner loop (docs/dev.md).

Checks the app (imported once from the current directory, before anything starts),
builds the local control plane into the cache on first use, starts it with the CRDs,
the operator and a WorkerPool running the app from the current directory, prints how to
submit to it, and runs until Ctrl-C or SIGTERM; then stops everything it started."""

from __future__ import annotations

import argparse
import hashlib
import re
import shlex
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from shiftboss.devloop.app import app_spec

if TYPE_CHECKING:
    from shiftboss.commands.common import Session
    from shiftboss.devloop.reload import ProjectWatcher
    from shiftboss.devloop.session import DevSession

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def dns_label(text: str) -> str:
    """A Kubernetes name (RFC 1123 label); an argparse type."""
    if not _DNS_LABEL.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid name: use at most 63 lower-case letters, digits and "
            "'-', starting and ending with a letter or digit"
        )
    return text


def replicas(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= 16:
        raise argparse.ArgumentTypeError(f"expected a number of workers from 1 to 16, got {text!r}")
    return count


def port(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1024 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 1024 to 65535, got {text!r}")
    return number


def default_kubeconfig(project: Path) -> Path:
    """One per project directory: two projects can run side by side, and a second
    ``shiftboss dev`` in the same directory is refused while the first runs."""
    from shiftboss.testing.binaries import cache_root

    digest = hashlib.sha256(str(project).encode()).hexdigest()[:8]
    return cache_root() / "dev" / f"{project.name or 'root'}-{digest}" / "kubeconfig"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "dev",
        help="run your worker app on a local cluster until Ctrl-C (the inner loop)",
        description="Start a local control plane, the operator and a WorkerPool running "
        "--app from the current directory, print how to submit jobs to it, and run until "
        "Ctrl-C. The control plane is built into the cache on first use (needs Go).",
    )
    parser.add_argument(
        "--app",
        required=True,
        type=app_spec,
        metavar="MODULE:ATTR",
        help="your worker_runtime.Worker, e.g. app:worker for `worker = Worker()` in ./app.py",
    )
    parser.add_argument(
        "--pool", type=dns_label, default="dev", help="the WorkerPool's name (default: dev)"
    )
    parser.add_argument(
        "--replicas", type=replicas, default=1, help="how many workers (default: 1)"
    )
    parser.add_argument(
        "-n", "--namespace", type=dns_label, default="default", help="(default: default)"
    )
    parser.add_argument(
        "--port", type=port, help="the operator's worker API port (default: a free one)"
    )
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        help="where to write the cluster's kubeconfig (default: one per project directory "
        "under the cache, e.g. ~/.cache/shiftboss/dev/)",
    )
    parser.add_argument(
        "--no-reload",
        dest="reload",
        action="store_false",
        help="do not restart the workers when a *.py file under the current directory changes",
    )
    parser.add_argument("--plain", action="store_true", help="plain progress lines, no status line")
    parser.set_defaults(handler=handler)


async def handler(args: argparse.Namespace, session: Session) -> int:
    # Runs in the foreground until a signal: nothing else shares this event loop.
    return run(args, session.prog)


def run(args: argparse.Namespace, prog: str) -> int:
    # Imported here: every other command would pay for the control plane's modules.
    from shiftboss.devloop.app import AppError, load_skills
    from shiftboss.devloop.instructions import DevInfo, render
    from shiftboss.devloop.reload import ProjectWatcher
    from shiftboss.devloop.report import terminal_report
    from shiftboss.devloop.session import DevOptions, DevSession, DevStartError
    from shiftboss.testing.binaries import BuildError, ensure_binaries
    from shiftboss.testing.cluster import ClusterStartError
    from shiftboss.testing.up import (
        ignore_signals,
        interrupt_on_signals,
        kubeconfig_slot,
        run_until_stopped,
        write_kubeconfig,
    )

    interrupt_on_signals()  # before asyncio's own SIGINT handler can swallow a Ctrl-C
    project = Path.cwd()
    options = DevOptions(
        app=args.app,
        project=project,
        pool=args.pool,
        replicas=args.replicas,
        namespace=args.namespace,
        port=args.port,
    )
    try:
        skills = load_skills(args.app, project)
        with terminal_report(plain=args.plain) as report:
            bin_dir = ensure_binaries(report)
    except AppError as exc:
        print(f"{prog} dev: {exc}", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"{prog} dev: cannot build the local control plane: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    kubeconfig = (args.kubeconfig or default_kubeconfig(project)).absolute()
    # The baseline is taken before the workers start: an edit meanwhile restarts them.
    watcher = ProjectWatcher(project) if args.reload else None
    with kubeconfig_slot(kubeconfig):
        dev = DevSession(options, bin_dir)
        try:
            with terminal_report(plain=args.plain) as report:
                dev.start(report)
            write_kubeconfig(dev.cluster, kubeconfig)
            info = DevInfo(
                app=args.app, project=project, pool=args.pool, namespace=args.namespace,
                replicas=args.replicas, skills=skills, kubeconfig=kubeconfig, bin_dir=bin_dir,
                logs=dev.cluster.logs, prog=prog, reload=watcher is not None,
            )  # fmt: skip
            print(render(info), flush=True)
            if watcher is not None and watcher.truncated:
                print(
                    f"{prog} dev: only the first {watcher.limit} *.py files are watched", flush=True
                )
            reload = None if watcher is None else partial(_reload, dev, watcher, prog)
            return run_until_stopped(dev.cluster, dev.processes, every_second=reload)
        except KeyboardInterrupt:  # while starting
            return 0
        except (ClusterStartError, DevStartError, TimeoutError, RuntimeError) as exc:
            dev.keep_logs()
            print(f"{prog} dev: {exc}\nlogs kept in {dev.cluster.logs}", file=sys.stderr)
            return 1
        except subprocess.CalledProcessError as exc:
            dev.keep_logs()
            print(f"{prog} dev: {shlex.join(exc.cmd)} failed: {exc.stderr}", file=sys.stderr)
            return 1
        finally:
            ignore_signals()
            dev.stop()
            print(f"{prog} dev: stopped everything it started.", flush=True)


def _reload(dev: DevSession, watcher: ProjectWatcher, prog: str) -> None:
    """Restart the workers when the project's Python files changed since the last look."""
    changed = watcher.changed()
    if not changed:
        return
    shown = ", ".join(map(str, changed[:3]))
    if len(changed) > 3:
        shown += f" and {len(changed) - 3} more"
    pool = dev.options.pool
    print(f"{prog} dev: {shown} changed: restarting the workers of pool {pool}", flush=True)
    error = dev.restart_workers()
    if error:
        print(f"{prog} dev: could not restart the workers: {error}", file=sys.stderr, flush=True)
