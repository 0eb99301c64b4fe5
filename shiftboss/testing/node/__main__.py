"""``python -m shiftboss.testing.node --kubeconfig K --name N --workdir D [--pod-block B]``

``--pod-block B``: use the loopback block 127.B.0.0/16 that the caller holds (a
LocalCluster claims it before starting kube-apiserver with the block's Service CIDR);
without it the node claims a free block itself and holds it while it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from shiftboss.kube.config import KubeConfig
from shiftboss.testing.node.agent import ProcessNode
from shiftboss.testing.node.network import PodNetwork


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shiftboss.testing.node", description=__doc__)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--name", default="process-node")
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--host-ip", default="127.0.0.1")
    parser.add_argument("--pod-block", type=int, help="N of the 127.N.0.0/16 block to use")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    network = PodNetwork(args.pod_block) if args.pod_block else PodNetwork.claim()
    node = ProcessNode(
        KubeConfig.from_file(args.kubeconfig),
        args.name,
        args.workdir,
        network,
        host_ip=args.host_ip,
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
