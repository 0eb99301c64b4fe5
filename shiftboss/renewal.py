"""Keeping a Lease-backed right alive (a replica's leadership, a shard's claims): renew
every retry period, and stop acting at the renew deadline, even while a renewal hangs.

Both ``leader`` and ``shards`` keep their right this way; what a renewal is, and what
losing it is called, is theirs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn


async def keep_renewing(
    renew: Callable[[], Awaitable[None]],
    *,
    deadline: Callable[[], float],
    retry_seconds: float,
    late: str,
    lost: type[Exception],
    what: str,
    stop_acting: Callable[[], None],
    log: logging.Logger,
) -> NoReturn:
    """Call ``renew`` every ``retry_seconds`` until cancelled.

    ``renew`` moves ``deadline`` (loop time) when it succeeds, returns quietly on a
    failure worth retrying, and raises ``lost`` when another holder has the right.  When
    the deadline passes (``late`` says so) or ``lost`` is raised, ``stop_acting`` is
    called once, synchronously, and ``lost`` is raised.
    """
    loop = asyncio.get_running_loop()
    stopped = False

    def lose(reason: str) -> Exception:
        nonlocal stopped
        if not stopped:
            stopped = True
            log.error("lost %s: %s; stopping", what, reason)
            stop_acting()
        return lost(reason)

    def arm() -> asyncio.TimerHandle:
        # A timer, so that acting stops at the deadline even while this coroutine waits
        # on a hung request or the loop was stalled past it.
        return loop.call_at(deadline(), lose, late)

    watchdog = arm()
    try:
        while True:
            await asyncio.sleep(retry_seconds)
            if stopped or loop.time() >= deadline():
                raise lose(late)
            try:
                async with asyncio.timeout_at(deadline()):
                    await renew()
            except TimeoutError:
                raise lose(late) from None
            except lost as exc:
                raise lose(str(exc)) from None
            if stopped:
                raise lose(late)
            watchdog.cancel()
            watchdog = arm()  # at the deadline a successful renewal moved
    except (lost, asyncio.CancelledError):
        raise
    except Exception as exc:  # a bug must not leave a right that is no longer renewed
        raise lose(f"renewing {what} failed: {exc!r}") from exc
    finally:
        watchdog.cancel()
