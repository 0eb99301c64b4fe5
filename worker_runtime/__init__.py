"""Shiftboss worker runtime: write skills in Python, serve them to a worker pool.

::

    from pydantic import BaseModel
    from worker_runtime import Context, Worker

    worker = Worker()

    class Resize(BaseModel):
        url: str
        width: int

    @worker.skill()
    async def resize(params: Resize, ctx: Context) -> dict:
        await ctx.progress(50, "downloading")
        return {"ok": True}

Run it with ``shiftboss-worker run --app app:worker``.  The runtime keeps the rules of
``docs/worker-protocol.md``: an outcome is re-sent until the operator settles it (for
``SHIFTBOSS_OUTCOME_RETRY_SECONDS``), a slot stays taken until the skill has really
returned, a cancelled or timed-out skill gets ``ctx.cancelled`` and a grace before it is
cancelled, and SIGTERM drains: running attempts finish within the drain timeout, the
rest are released.
"""

from .config import WorkerConfig
from .context import Context
from .errors import ConfigError, FatalError, RetryableError
from .version import __version__
from .worker import Worker

__all__ = [
    "ConfigError",
    "Context",
    "FatalError",
    "RetryableError",
    "Worker",
    "WorkerConfig",
    "__version__",
]
