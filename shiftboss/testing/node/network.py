"""Which loopback block a process node hands out as pod IPs.

Every pod gets its own loopback address as its pod IP.  Two process nodes on one
machine (two LocalClusters side by side, e.g. a fault test beside another suite)
must not hand out the same addresses, or their pods would collide on ports.  Each
node therefore holds an exclusive lock on one block ``127.N.0.0/16`` (N from 1 to
254) for as long as it runs; the lock is released by the kernel when it exits,
however it exits.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

LOCK_DIR = Path(tempfile.gettempdir()) / "shiftboss-pod-networks"


class PodNetwork:
    """An exclusively held ``127.N.0.0/16`` block and the addresses in it."""

    def __init__(self, block: int, lock: IO[str] | None) -> None:
        self.block = block
        self.network = ipaddress.ip_network(f"127.{block}.0.0/16")
        self._lock = lock

    @classmethod
    def claim(cls, lock_dir: Path = LOCK_DIR) -> PodNetwork:
        """The first block no other running node holds."""
        lock_dir.mkdir(parents=True, exist_ok=True)
        for block in range(1, 255):
            handle = open(lock_dir / f"127.{block}.lock", "w")  # noqa: SIM115 (held while we run)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return cls(block, handle)
        raise RuntimeError(f"every pod network block under {lock_dir} is held by a running node")

    def addresses(self) -> Iterator[str]:
        """Pod IPs in order, skipping .0, .1 and .255 of every /24."""
        return (str(ip) for ip in self.network.hosts() if int(ip) & 0xFF not in (0, 1, 255))

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None
