"""``rerun NAME``, ``suspend NAME...`` and ``resume NAME...``: a finished Job run again
(``--wait`` follows the new run as ``submit --wait`` does), Jobs held out of their
queue and let go again."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable

from shiftboss.api.job import Job, JobPhase, is_terminal
from shiftboss.client.runs import finished, requested_run
from shiftboss.commands.common import Exit, Session, UsageError, describe, duration, exit_code
from shiftboss.commands.jobs import SubParsers, add_output_flag, wait_and_print
from shiftboss.commands.render import RESOURCE, render


def add_parsers(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    rerun = sub.add_parser(
        "rerun",
        parents=[parent],
        help="run a finished Job again (and with --wait, wait for its result)",
        description="Run the finished Job NAME again, with the same name and spec: raises "
        "its shiftboss.io/run-generation annotation (spec is left alone, so a GitOps tool "
        "sees no drift); the earlier run is kept in status.runs. Refused (exit 2) while it "
        "still waits or runs, and for a cancelled Job. With --wait, show the new run's "
        "progress and print its result as JSON.",
    )
    rerun.add_argument("name", metavar="NAME")
    rerun.add_argument("--wait", action="store_true", help="wait for the result and print it")
    rerun.add_argument(
        "--timeout",
        type=duration,
        metavar="DURATION",
        help="with --wait: give up waiting after this long (30s, 5m; exit 3); the job keeps "
        "running",
    )
    add_output_flag(rerun, "the Job (without --wait)")
    rerun.set_defaults(handler=rerun_job)

    for command, verb, description in (
        (
            "suspend",
            "hold Jobs out of their queue",
            "Suspend the Jobs NAME... (sets spec.suspend): a waiting job leaves its pool's "
            "queue (phase Suspended); a running attempt finishes first, then the job holds. "
            "`resume` lets them run again.",
        ),
        (
            "resume",
            "let suspended Jobs run again",
            "Resume the Jobs NAME... (clears spec.suspend): they go back to their pool's queue.",
        ),
    ):
        parser = sub.add_parser(command, parents=[parent], help=verb, description=description)
        parser.add_argument("names", metavar="NAME", nargs="+")
        add_output_flag(parser, "the Jobs")
        parser.set_defaults(handler=suspend_jobs if command == "suspend" else resume_jobs)


async def rerun_job(args: argparse.Namespace, session: Session) -> int:
    if args.timeout is not None and not args.wait:
        raise UsageError(
            f"--timeout limits a wait: add --wait (rerun {args.name} --wait --timeout ...)"
        )
    client = await session.client()
    job = await client.rerun(args.name)
    requested = f"{RESOURCE}/{job.name} rerun requested (run {requested_run(job)})"
    if args.wait:
        print(requested, file=sys.stderr)  # stdout carries only the result
        return await wait_and_print(client, job, args.timeout)
    print(render([job], args.output, single=True) if args.output else requested)
    return Exit.OK


async def suspend_jobs(args: argparse.Namespace, session: Session) -> int:
    client = await session.client()
    return await _each(args, session, client.suspend, _suspended)


async def resume_jobs(args: argparse.Namespace, session: Session) -> int:
    client = await session.client()
    return await _each(args, session, client.resume, lambda job: f"{RESOURCE}/{job.name} resumed")


def _suspended(job: Job) -> str:
    """What ``suspend`` did to ``job``, as the patched Job says."""
    status = job.status
    phase = status.phase if status else None
    said = f"{RESOURCE}/{job.name} suspended"
    if phase is JobPhase.RUNNING:
        return f"{said} (attempt {status.attempt if status else 0} runs to its end first)"
    if is_terminal(phase) and finished(job):
        return f"{said} (it already finished, {phase}: a rerun will wait until resumed)"
    return said


async def _each(
    args: argparse.Namespace,
    session: Session,
    patch: Callable[[str], Awaitable[Job]],
    said: Callable[[Job], str],
) -> int:
    """``patch`` every NAME, as kubectl does with several: a refusal of one is reported
    and the others are still done; the exit code is the first refusal's."""
    jobs: list[Job] = []
    code = Exit.OK
    for name in args.names:
        try:
            job = await patch(name)
        except Exception as exc:
            failed = exit_code(exc)
            if failed is None:
                raise
            print(
                f"{session.prog} {args.command}: {describe(exc, session.prog, args)}",
                file=sys.stderr,
            )
            code = code or failed
            continue
        jobs.append(job)
        if not args.output:
            print(said(job))
    if args.output and jobs:
        print(render(jobs, args.output, single=len(args.names) == 1))
    return code
