"""``shiftboss-worker``: run a worker app, or show its skills.

    shiftboss-worker run --app app:worker       # serve until SIGTERM
    shiftboss-worker skills --app app:worker    # the skills and schemas, as JSON

``--app`` defaults to ``$SHIFTBOSS_APP``.  Exit status: 0 after a drain, 1 when the
operator refuses the worker, 2 for configuration and usage errors.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence

from .errors import ConfigError, OperatorError
from .version import __version__
from .worker import Worker

PROG = "shiftboss-worker"


def load_app(spec: str) -> Worker:
    """Import ``module:attr`` (attr defaults to ``worker``) from the current directory too."""
    module_name, _, attr = spec.partition(":")
    attr = attr or "worker"
    if not module_name or not all(p.isidentifier() for p in module_name.split(".")):
        raise ConfigError(f"--app {spec!r}: expected 'module:attribute', e.g. app:worker")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # console scripts do not look in the cwd otherwise
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise ConfigError(
                f"--app {spec!r}: no module named {exc.name!r} (searched the current "
                f"directory {os.getcwd()} and sys.path)"
            ) from None
        raise  # the app itself failed to import something: show the real traceback
    target: object = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"--app {spec!r}: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not isinstance(target, Worker):
        raise ConfigError(
            f"--app {spec!r} is a {type(target).__name__}, not a worker_runtime.Worker"
        )
    return target


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Run a Shiftboss worker app.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "serve the app's skills until SIGTERM (configured by SHIFTBOSS_* variables)"),
        ("skills", "print the app's skills with their JSON Schemas"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument(
            "--app",
            default=os.environ.get("SHIFTBOSS_APP"),
            help="module:attribute of the Worker object (default: $SHIFTBOSS_APP)",
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if not args.app:
            raise ConfigError("no app given: pass --app module:attribute or set SHIFTBOSS_APP")
        worker = load_app(args.app)
        if args.command == "skills":
            specs = [s.model_dump(mode="json") for s in worker.skills]
            print(json.dumps(specs, indent=2))
            return 0
        worker.run()
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except OperatorError as exc:
        print(f"{PROG}: the operator refused this worker: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
