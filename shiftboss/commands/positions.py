"""What the operator says of waiting jobs, for ``get``: their place in the pool's queue
and why they wait.  Never a reason for ``get`` to fail: when the operator cannot tell,
``get`` prints the Jobs anyway and says why on one line of stderr."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from shiftboss.api.job import Job
from shiftboss.commands.common import Session
from shiftboss.commands.operator import Operator, OperatorUnreachable
from shiftboss.commands.render import waiting
from shiftboss.workerapi.view_models import QueueView

#: Waiting jobs asked about at most per command (narrow with --pool, --phase, -l).
MAX_LOOKUPS = 200
#: Lookups at once: the operator limits reads per caller address.
CONCURRENCY = 4


async def queue_views(
    args: argparse.Namespace, session: Session, namespace: str, jobs: Sequence[Job]
) -> dict[str, QueueView]:
    """The operator's views of the waiting ``jobs``, by uid (those it could give)."""
    wanted = [job.uid for job in jobs if waiting(job) and job.uid]
    if not wanted:
        return {}
    operator = Operator(args, session)
    views: dict[str, QueueView] = {}
    try:
        # The first alone: when the operator cannot be reached, ask no more.
        try:
            views[wanted[0]] = await operator.queue(namespace, wanted[0])
        except OperatorUnreachable as exc:
            _say(session, f"queue position unknown: {exc}")
            return views
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(uid: str) -> QueueView:
            async with gate:
                return await operator.queue(namespace, uid)

        rest = wanted[1:MAX_LOOKUPS]
        answers = await asyncio.gather(*(one(uid) for uid in rest), return_exceptions=True)
        failed: list[BaseException] = []
        for uid, answer in zip(rest, answers, strict=True):
            if isinstance(answer, QueueView):
                views[uid] = answer
            elif isinstance(answer, OperatorUnreachable):
                failed.append(answer)
            else:
                raise answer
        if failed:
            _say(session, f"queue position unknown for {len(failed)} job(s): {failed[0]}")
        if len(wanted) > MAX_LOOKUPS:
            _say(
                session,
                f"queue position not asked for {len(wanted) - MAX_LOOKUPS} more waiting job(s) "
                f"(over {MAX_LOOKUPS}): narrow the list with --pool, --phase or -l",
            )
        return views
    finally:
        await operator.aclose()


def _say(session: Session, line: str) -> None:
    print(f"{session.prog} {session.args.command}: {line}", file=sys.stderr)
