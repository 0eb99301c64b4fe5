"""``python -m shiftboss.testing.node --kubeconfig K --name N --workdir D``"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from shiftboss.kube.config import KubeConfig
from shiftboss.testing.node.agent import ProcessNode


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shiftboss.testing.node", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--name", default="process-node")
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--host-ip", default="127.0.0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    node = ProcessNode(
        KubeConfig.from_file(args.kubeconfig), args.name, args.workdir, host_ip=args.host_ip
    )

    async def run() -> None:
        task = asyncio.create_task(node.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run())


if __name__ == "__main__":
    main()
