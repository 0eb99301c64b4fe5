"""The demo's worker app: `shiftboss-worker run --app demo_worker:worker`."""

from __future__ import annotations

import asyncio
import hashlib

from pydantic import BaseModel, Field

from worker_runtime import Context, FatalError, Worker

worker = Worker()


class Resize(BaseModel):
    url: str
    width: int = Field(gt=0, le=10_000)


@worker.skill()
async def resize(params: Resize, ctx: Context) -> dict:
    """Pretend to make a thumbnail (takes a moment, reports progress)."""
    await ctx.progress(50, "downloading")
    await asyncio.sleep(0.2)
    digest = hashlib.sha256(f"{params.url}:{params.width}".encode()).hexdigest()[:12]
    return {"thumbnail": f"{params.url}?w={params.width}", "etag": digest}


class Add(BaseModel):
    a: int
    b: int


@worker.skill()
def add(params: Add) -> int:
    """A sync skill: runs in a thread."""
    return params.a + params.b


class Sleep(BaseModel):
    seconds: float = Field(ge=0, le=3600)


@worker.skill()
async def sleep(params: Sleep, ctx: Context) -> dict:
    """Sleep, stopping early when the job is cancelled or times out."""
    try:
        await asyncio.wait_for(ctx.cancelled.wait(), params.seconds)
    except TimeoutError:
        return {"slept": params.seconds}
    # Told to stop: stopping is not finishing (a returned value would count as a result).
    raise asyncio.CancelledError(ctx.cancel_reason)


class Explode(BaseModel):
    message: str = "boom"
    fatal: bool = True


@worker.skill()
async def explode(params: Explode) -> None:
    """Always fails: with FatalError (no retry) or a plain exception (retried)."""
    if params.fatal:
        raise FatalError(params.message)
    raise RuntimeError(params.message)
