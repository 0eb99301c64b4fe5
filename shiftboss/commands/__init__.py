"""The job commands of ``shiftboss`` (and ``kubectl shiftboss``): ``submit``, ``get``,
``wait``, ``cancel`` and ``logs``, on top of ``shiftboss.AsyncClient``. See docs/cli.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from shiftboss.commands import dev, jobs, lifecycle, logs, submit, timeline, workers
from shiftboss.commands.common import add_global_flags, execute
from shiftboss.commands.operator import add_operator_flags

#: The names of the commands this package adds.
COMMANDS = frozenset({"submit", "get", "wait", "cancel", "logs", "dev"})
COMMANDS |= {"rerun", "suspend", "resume", "timeline"}
COMMANDS |= {"workers"}


def program_name(argv0: str) -> str:
    """``kubectl shiftboss`` when run as the kubectl plugin (kubectl executes
    ``kubectl-shiftboss``), else ``shiftboss``: the name usage and errors show."""
    return "kubectl shiftboss" if Path(argv0).name.startswith("kubectl-") else "shiftboss"


def add_commands(sub: jobs.SubParsers) -> None:
    parent = argparse.ArgumentParser(add_help=False)
    add_global_flags(parent)
    add_operator_flags(parent)
    submit.add_parser(sub, parent)
    jobs.add_parsers(sub, parent)
    logs.add_parser(sub, parent)
    workers.add_parser(sub, parent)
    dev.add_parser(sub)
    lifecycle.add_parsers(sub, parent)
    timeline.add_parser(sub, parent)


def dispatch(args: argparse.Namespace, prog: str) -> int:
    """Run the job command ``args`` selected; return its exit code."""
    return execute(args, args.handler, prog)
