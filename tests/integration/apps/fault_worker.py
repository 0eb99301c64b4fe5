"""The worker app of the fault tests: skills that leave a trace of every execution.

Each execution appends JSON lines to the file named by ``$SIDE_EFFECTS`` (one
``start`` and one ``end`` per run, with the job, the attempt, the pod and the time), so
a test can count how often a skill really ran, whatever the Job's status says.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

from pydantic import BaseModel, Field

from worker_runtime import Context, Worker

worker = Worker()


def trace(ctx: Context, event: str, **extra: object) -> None:
    line = {
        "job": ctx.job.name,
        "attempt": ctx.attempt,
        "worker": ctx.worker_id,
        "event": event,
        "t": time.time(),
        "thread": threading.get_ident(),
        **extra,
    }
    # One small O_APPEND write per line: lines of concurrent workers never interleave.
    fd = os.open(os.environ["SIDE_EFFECTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


class Work(BaseModel):
    seconds: float = Field(ge=0, le=3600)


@worker.skill()
async def work(params: Work, ctx: Context) -> dict:
    """Work for a while (an async skill); stops, without a result, when told to."""
    trace(ctx, "start")
    try:
        await asyncio.wait_for(ctx.cancelled.wait(), params.seconds)
    except TimeoutError:
        trace(ctx, "end")
        return {"worked": params.seconds, "attempt": ctx.attempt}
    trace(ctx, "stopped", reason=ctx.cancel_reason)
    raise asyncio.CancelledError(ctx.cancel_reason)


class Spin(BaseModel):
    seconds: float = Field(ge=0, le=3600)
    #: How long it takes to notice that it was told to stop (a slow, sync skill).
    stop_after: float = Field(default=0, ge=0, le=60)


@worker.skill()
def spin(params: Spin, ctx: Context) -> dict:
    """A sync skill (runs in a thread) that takes ``stop_after`` to stop when told to."""
    trace(ctx, "start")
    deadline = time.monotonic() + params.seconds
    while time.monotonic() < deadline:
        if ctx.cancelled.is_set():
            time.sleep(params.stop_after)
            trace(ctx, "stopped", reason=ctx.cancel_reason)
            raise RuntimeError(f"stopped: {ctx.cancel_reason}")
        time.sleep(0.05)
    trace(ctx, "end")
    return {"spun": params.seconds}


def read_trace(path: str) -> list[dict]:
    """The lines written so far (for the tests)."""
    try:
        with open(path) as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
