"""``timeline NAME``: the transitions of a Job's current run (``status.timeline``) as a
table, then one line per earlier run (``status.runs``); ``-o json|yaml`` prints both as
the Job's status holds them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from shiftboss.api.job import Job
from shiftboss.api.jobstatus import RunRecord, TimelineEntry
from shiftboss.client.runs import observed_run
from shiftboss.commands.common import Exit, Session
from shiftboss.commands.jobs import SubParsers

NONE = "<none>"
TIMELINE_COLUMNS = ("FROM", "TO", "REASON", "ATTEMPT", "WORKER", "TIME", "MESSAGE")
RUN_COLUMNS = ("RUN", "PHASE", "ATTEMPTS", "STARTED", "COMPLETED", "DURATION", "MESSAGE")


def add_parser(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "timeline",
        parents=[parent],
        help="show how a Job got where it is",
        description="Show the transitions of the Job NAME's current run (from, to, reason, "
        "attempt, worker, time; the last 20), then one line per earlier run.",
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument(
        "-o",
        "--output",
        choices=("json", "yaml"),
        help="print the run, its timeline and the earlier runs as json or yaml",
    )
    parser.set_defaults(handler=show_timeline)


async def show_timeline(args: argparse.Namespace, session: Session) -> int:
    job = await (await session.client()).get(args.name)
    if args.output:
        print(render_document(job, args.output))
        return Exit.OK
    status = job.status
    if status is None or not (status.timeline or status.runs):
        print(
            f"No transitions recorded yet for job {job.name} in namespace {job.namespace} "
            "(the operator has not picked it up).",
            file=sys.stderr,
        )
        return Exit.OK
    print(render_table(job))
    return Exit.OK


def render_table(job: Job) -> str:
    """The current run's transitions, then (after a blank line) the earlier runs."""
    status = job.status
    timeline = status.timeline if status else []
    runs = status.runs if status else []
    parts = [grid(TIMELINE_COLUMNS, [transition_row(entry) for entry in timeline])]
    if runs:
        parts.append(grid(RUN_COLUMNS, [run_row(run) for run in runs]))
    return "\n\n".join(parts)


def transition_row(entry: TimelineEntry) -> list[str]:
    return [
        str(entry.from_phase) if entry.from_phase else NONE,
        str(entry.to_phase),
        entry.reason,
        str(entry.attempt),
        entry.worker or NONE,
        _time(entry.time),
        entry.message or "",
    ]


def run_row(run: RunRecord) -> list[str]:
    message = f"{run.error.type}: {run.error.message}" if run.error else run.message or ""
    return [
        str(run.run_generation),
        str(run.phase),
        str(run.attempts),
        _time(run.start_time),
        _time(run.completion_time),
        run.duration or NONE,
        message,
    ]


def _time(value: datetime | None) -> str:
    """RFC 3339 in UTC to the millisecond (transitions often come within one second).
    Absolute: a relative age would go stale in a pasted report."""
    if value is None:
        return NONE
    value = value.astimezone(UTC)
    if not value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """kubectl's table: columns padded to their widest cell, 3 spaces apart, the last
    (the message) unpadded."""
    table = [list(header), *map(list, rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    return "\n".join(line.rstrip() for line in lines)


def document(job: Job) -> dict[str, Any]:
    """What ``-o json|yaml`` prints: the run and its history, named as in the Job."""
    status = job.status
    return {
        "name": job.name,
        "namespace": job.namespace,
        "runGeneration": observed_run(job),
        "phase": str(status.phase) if status and status.phase else None,
        "timeline": [
            entry.model_dump(mode="json", by_alias=True)
            for entry in (status.timeline if status else [])
        ],
        "runs": [
            run.model_dump(mode="json", by_alias=True) for run in (status.runs if status else [])
        ],
    }


def render_document(job: Job, output: str) -> str:
    if output == "json":
        return json.dumps(document(job), indent=4, ensure_ascii=False)
    return yaml.safe_dump(document(job), sort_keys=False).rstrip("\n")
