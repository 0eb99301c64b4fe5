"""Where is a running operator stuck? Signals that print its stacks to stderr (its log):

- ``SIGUSR1``: every thread's stack, from a C-level handler (:mod:`faulthandler`), so it
  answers even when the event loop is blocked by a call that never returns;
- ``SIGUSR2``: every asyncio task's stack, from the event loop, which shows the ``await``
  each task waits on (a thread dump of an idle loop shows only its poll).

docs/install.md ("Where is it stuck?") shows how to send them to a replica; the tests send
both to an operator that does not stop within its time (``OperatorProcess.stop``).
"""

from __future__ import annotations

import asyncio
import faulthandler
import io
import signal
import sys


def install(loop: asyncio.AbstractEventLoop) -> None:
    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
    loop.add_signal_handler(signal.SIGUSR2, dump_tasks)


def dump_tasks() -> None:
    """Every task's stack, as one write (so that log lines do not interleave with it)."""
    out = io.StringIO()
    tasks = asyncio.all_tasks()
    out.write(f"--- {len(tasks)} asyncio tasks (SIGUSR2) ---\n")
    for task in sorted(tasks, key=lambda t: t.get_name()):
        task.print_stack(limit=12, file=out)
    out.write("--- end of asyncio tasks ---\n")
    sys.stderr.write(out.getvalue())
    sys.stderr.flush()
