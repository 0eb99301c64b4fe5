"""``get [NAME]``, ``wait NAME`` and ``cancel NAME``, and what they share with ``submit``:
the ``-o`` flag and how a result is printed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TypeAlias

from shiftboss.api.job import Job, JobPhase, is_terminal
from shiftboss.client import AsyncClient
from shiftboss.client.runs import observed_run, requested_run
from shiftboss.commands.common import Exit, Session, duration
from shiftboss.commands.positions import queue_views
from shiftboss.commands.render import OUTPUTS, RESOURCE, render

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_output_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-o", "--output", choices=OUTPUTS, help=f"print {what} as json, yaml, name or a wide table"
    )


async def wait_and_print(client: AsyncClient, job: Job, timeout: float | None) -> int:
    """Wait for ``job``, its progress shown on stderr, and print its result as JSON
    (``5``, ``{"a": 1}``) on stdout; a failure is raised (exit 1)."""
    # rich only here: `shiftboss run` (the operator image) does without it.
    from shiftboss.commands.progress import stderr_console, wait_showing

    result = await wait_showing(client, job, timeout, stderr_console())
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return Exit.OK


def add_parsers(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    get = sub.add_parser(
        "get",
        parents=[parent],
        help="list Jobs, or show one",
        description="List the namespace's Jobs as a table, or show the Job NAME.",
    )
    get.add_argument("name", metavar="NAME", nargs="?", help="one Job (default: all of them)")
    get.add_argument("--pool", help="only the Jobs of this WorkerPool")
    get.add_argument(
        "--phase", choices=[phase.value for phase in JobPhase], help="only the Jobs in this phase"
    )
    get.add_argument(
        "-l",
        "--selector",
        type=labels,
        default={},
        metavar="KEY=VALUE[,...]",
        help="only the Jobs with these labels",
    )
    add_output_flag(get, "the Jobs")
    get.set_defaults(handler=get_jobs)

    wait = sub.add_parser(
        "wait",
        parents=[parent],
        help="wait for a Job and print its result",
        description="Wait for the Job NAME to finish, showing its progress; print its "
        "result as JSON (exit 0), or its error (exit 1 when it failed or was cancelled).",
    )
    wait.add_argument("name", metavar="NAME")
    wait.add_argument(
        "--timeout",
        type=duration,
        metavar="DURATION",
        help="give up waiting after this long (30s, 5m; exit 3); the job keeps running",
    )
    wait.set_defaults(handler=wait_job)

    cancel = sub.add_parser(
        "cancel",
        parents=[parent],
        help="cancel a Job",
        description="Cancel the Job NAME (sets spec.cancel): a waiting job is dropped, a "
        "running attempt is told to stop. Returns at once; `wait` then exits 1.",
    )
    cancel.add_argument("name", metavar="NAME")
    add_output_flag(cancel, "the Job")
    cancel.set_defaults(handler=cancel_job)


def labels(selector: str) -> dict[str, str]:
    """``-l team=a,tier=b`` as a mapping (only equality, as the client filters). An
    argparse type."""
    pairs = [term.partition("=") for term in selector.split(",") if term.strip()]
    if any(not sep or not key.strip() for key, sep, _ in pairs):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE[,KEY=VALUE...], got {selector!r}")
    return {key.strip(): value.strip() for key, _, value in pairs}


async def get_jobs(args: argparse.Namespace, session: Session) -> int:
    """The Jobs; a table also shows what the operator says of the waiting ones (the wide
    table, and one job's: a lookup per job is cheap for one, not for a whole list)."""
    client = await session.client()
    single = bool(args.name)
    if single:
        jobs = [await client.get(args.name)]
    else:
        jobs = await client.list(pool=args.pool, phase=args.phase, labels=args.selector)
    if not jobs and args.output in (None, "wide"):
        print(f"No jobs found in namespace {client.namespace}.", file=sys.stderr)
        return Exit.OK
    queue = None
    if args.output == "wide" or (single and args.output is None):
        queue = await queue_views(args, session, client.namespace, jobs)
    print(render(jobs, args.output, single=single, queue=queue))
    return Exit.OK


async def wait_job(args: argparse.Namespace, session: Session) -> int:
    client = await session.client()
    return await wait_and_print(client, await client.get(args.name), args.timeout)


async def cancel_job(args: argparse.Namespace, session: Session) -> int:
    job = await (await session.client()).cancel(args.name)
    print(render([job], args.output, single=True) if args.output else cancel_outcome(job))
    return Exit.OK


def cancel_outcome(job: Job) -> str:
    """What ``cancel`` did to ``job`` (as the patch returned it), in a line."""
    if job.status is None or not is_terminal(job.status.phase):
        return f"{RESOURCE}/{job.name} cancel requested"
    if requested_run(job) > observed_run(job):
        # A cancelled Job never runs again: the rerun asked for will not start.
        return (
            f"{RESOURCE}/{job.name} cancel requested: its run {observed_run(job)} "
            f"already finished ({job.status.phase}), and the rerun asked for will not start"
        )
    return f"{RESOURCE}/{job.name} already finished ({job.status.phase}): nothing to cancel"
