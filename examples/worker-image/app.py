"""A job author's own worker, packaged as an image FROM the Shiftboss worker base.

Run as ``shiftboss-worker run --app app:worker`` (the operator does that in each pod).
``parse_yaml`` uses this image's own requirement (PyYAML, see requirements.txt);
``add`` and ``sleep`` are the smallest sync and cancellable skills.
"""

from __future__ import annotations

import asyncio
from typing import Any

import yaml
from pydantic import BaseModel, Field

from worker_runtime import Context, FatalError, Worker

worker = Worker(version="1.0.0")


class Document(BaseModel):
    text: str = Field(max_length=64 * 1024)


@worker.skill()
def parse_yaml(params: Document) -> Any:
    """Parse a YAML document with the safe loader and return it as JSON."""
    try:
        return yaml.safe_load(params.text)
    except yaml.YAMLError as exc:
        raise FatalError(f"not valid YAML: {exc}") from None  # retrying cannot help


class Add(BaseModel):
    a: int
    b: int


@worker.skill()
def add(params: Add) -> int:
    """Add two integers."""
    return params.a + params.b


class Sleep(BaseModel):
    seconds: float = Field(ge=0, le=3600)


@worker.skill()
async def sleep(params: Sleep, ctx: Context) -> dict[str, float]:
    """Sleep, stopping early when the job is cancelled or times out."""
    try:
        await asyncio.wait_for(ctx.cancelled.wait(), params.seconds)
    except TimeoutError:
        return {"slept": params.seconds}
    # Told to stop: stopping is not finishing (a returned value would count as a result).
    raise asyncio.CancelledError(ctx.cancel_reason)
