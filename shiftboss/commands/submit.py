"""``submit POOL SKILL``: create a Job from flags and/or a manifest; with ``--wait``, follow
it to its end and print its result."""

from __future__ import annotations

import argparse
import sys

from shiftboss.commands.common import Exit, Session, duration
from shiftboss.commands.jobs import SubParsers, add_output_flag, wait_and_print
from shiftboss.commands.params import manifest, param, params_json, submission
from shiftboss.commands.render import RESOURCE, render


def add_parser(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "submit",
        parents=[parent],
        help="create a Job (and with --wait, wait for its result)",
        description="Create a Job running SKILL on the WorkerPool POOL. Without --wait, "
        "print its name; with --wait, show its progress and print its result as JSON.",
    )
    parser.add_argument("pool", metavar="POOL", nargs="?", help="the WorkerPool (or from -f)")
    parser.add_argument("skill", metavar="SKILL", nargs="?", help="the skill (or from -f)")
    parser.add_argument(
        "-p",
        "--param",
        type=param,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter; VALUE is JSON if it parses (a=2 is a number), else a string "
        "(repeatable; wins over --params-json and -f)",
    )
    parser.add_argument(
        "--params-json", type=params_json, metavar="JSON", help="the params as a JSON object"
    )
    parser.add_argument(
        "-f",
        "--filename",
        type=manifest,
        metavar="FILE",
        help="a Job manifest (YAML or JSON; - for stdin)",
    )
    names = parser.add_mutually_exclusive_group()
    names.add_argument("--name", help="the Job's name (default: SKILL- and a random suffix)")
    names.add_argument("--generate-name", metavar="PREFIX", help="the prefix of a generated name")
    parser.add_argument("--priority", type=int, metavar="N", help="0 to 10 (default 5)")
    parser.add_argument(
        "--timeout-seconds", type=int, metavar="N", help="time limit of each attempt, in seconds"
    )
    parser.add_argument("--wait", action="store_true", help="wait for the result and print it")
    parser.add_argument(
        "--timeout",
        type=duration,
        metavar="DURATION",
        help="with --wait: give up waiting after this long (30s, 5m); the job keeps running",
    )
    add_output_flag(parser, "the created Job (without --wait)")
    parser.set_defaults(handler=submit)


async def submit(args: argparse.Namespace, session: Session) -> int:
    what = submission(args)  # refuses bad input before the cluster is contacted
    if what.namespace:
        args.namespace = what.namespace
    client = await session.client()
    job = await client.submit(what.pool, what.skill, what.params, **what.options)
    created = f"{RESOURCE}/{job.name} created"
    if args.wait:
        print(created, file=sys.stderr)  # stdout carries only the result
        return await wait_and_print(client, job, args.timeout)
    print(render([job], args.output, single=True) if args.output else created)
    return Exit.OK
