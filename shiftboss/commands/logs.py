"""``logs NAME``: the lines of a job's attempts in its workers' pod logs, read through the
API server's pod log endpoint. The worker runtime tags every line logged during an attempt
with the attempt id, ``<job uid>.<attempt>`` (text: ``[... attempt=<id>]``, JSON:
``"attempt_id"``), so the job's lines are found by its uid, never by a name that a
recreated Job would share."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import timedelta

from shiftboss.api.common import format_timestamp
from shiftboss.api.job import Job
from shiftboss.client import PermissionDenied, RequestFailed
from shiftboss.commands.common import Exit, Session
from shiftboss.commands.jobs import SubParsers
from shiftboss.kube.client import ApiError, KubeClient
from shiftboss.pools.pods import WORKER_CONTAINER

#: The start of a record in the text format (``2024-05-01 12:00:00,123 INFO ...``); a line
#: without it continues the record before it (a traceback).
_RECORD_START = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}|\{")


#: How far before an attempt's recorded start its pod's log is read.
CLOCK_SKEW = timedelta(seconds=10)


def add_parser(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "logs",
        parents=[parent],
        help="print the worker log lines of a Job's attempts",
        description="Print the lines that the workers of the Job NAME logged while running "
        "its attempts, read from their pods' logs (kubectl logs). Lines of pods that are gone "
        "are lost: the command says which.",
    )
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--attempt", type=int, metavar="N", help="only attempt N")
    parser.add_argument("--prefix", action="store_true", help="prefix each line with its pod")
    parser.set_defaults(handler=logs)


def job_lines(text: str, job_uid: str, attempt: int | None = None) -> Iterator[str]:
    """The lines of ``text`` logged for the job (one attempt of it, if given), with the
    continuation lines (tracebacks) of those records."""
    wanted = re.compile(re.escape(job_uid) + (rf"\.{attempt}\b" if attempt else r"\.\d+\b"))
    keeping = False
    for line in text.splitlines():
        if _RECORD_START.match(line):
            keeping = wanted.search(line) is not None
        if keeping:
            yield line


def workers(job: Job, attempt: int | None = None) -> dict[str, list[int]]:
    """The workers (pod names) that ran the job's attempts, in order, with their attempt
    numbers."""
    ran: dict[str, list[int]] = {}
    status = job.status
    records = status.attempts if status else []
    for record in records:
        if record.worker and attempt in (None, record.attempt):
            ran.setdefault(record.worker, []).append(record.attempt)
    if status and status.worker and attempt in (None, status.attempt):
        numbers = ran.setdefault(status.worker, [])
        if status.attempt not in numbers:
            numbers.append(status.attempt)
    return ran


def since(job: Job, attempts: Iterable[int]) -> str | None:
    """Where to start reading a pod's log (RFC 3339): the earliest start of ``attempts``,
    less a margin for the skew between the operator's clock and the node's."""
    wanted = set(attempts)
    starts = [
        record.start_time
        for record in (job.status.attempts if job.status else [])
        if record.attempt in wanted and record.start_time
    ]
    return format_timestamp(min(starts) - CLOCK_SKEW) if starts else None


async def logs(args: argparse.Namespace, session: Session) -> int:
    client = await session.client()
    job = await client.get(args.name)
    namespace = client.namespace
    ran = workers(job, args.attempt)
    if not ran:
        which = f"attempt {args.attempt} of job" if args.attempt else "job"
        print(f"{which} {job.name} has not run on a worker yet: no log lines", file=sys.stderr)
        return Exit.OK
    async with KubeClient(await session.config()) as kube:
        for pod, attempts in ran.items():
            numbers = ", ".join(map(str, attempts))
            try:
                text = await pod_log(kube, namespace, pod, since(job, attempts))
            except ApiError as exc:
                if exc.status != 404:
                    raise log_error(exc, namespace, pod) from None
                print(
                    f"pod {pod} (attempt {numbers}) is gone: its log lines are lost "
                    "(or it was a worker outside the cluster)",
                    file=sys.stderr,
                )
                continue
            for line in job_lines(text, str(job.uid), args.attempt):
                print(f"[{pod}] {line}" if args.prefix else line)
    return Exit.OK


async def pod_log(kube: KubeClient, namespace: str, pod: str, since_time: str | None) -> str:
    """The worker container's log (``GET .../pods/{pod}/log``), from ``since_time``."""
    return await kube.get_text(
        f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
        container=WORKER_CONTAINER,
        sinceTime=since_time,
    )


def log_error(error: ApiError, namespace: str, pod: str) -> RequestFailed:
    """A refused log read, naming the pod and the permission it needs."""
    said = f"(the API server said: {error.message})"
    if error.status == 403:
        return PermissionDenied(
            f"cannot read the log of pod {pod} in namespace {namespace}: RBAC does not allow "
            f"verb 'get' on pods/log there; ask for a Role granting it {said}",
            error.status,
            error.reason,
        )
    return RequestFailed(
        f"cannot read the log of pod {pod} in namespace {namespace}: {error}",
        error.status,
        error.reason,
    )
