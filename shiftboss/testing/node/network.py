"""The loopback block of one local cluster: pod IPs and Service ClusterIPs.

Every pod gets its own loopback address as its pod IP.  Two clusters on one machine
(two LocalClusters side by side, e.g. ``pytest -n 2``) must not hand out the same
addresses, or their pods and Services would collide on ports.  Each cluster therefore
holds an exclusive lock on one block ``127.N.0.0/16`` (N from 1 to 254) for as long as
it runs; the lock is released by the kernel when its holder exits, however it exits.

Inside a block, ``127.N.240.0/20`` is the Service CIDR given to kube-apiserver, and pod
IPs are taken below it.  The first 256 addresses of that CIDR are the API server's
static band (it allocates dynamic ClusterIPs from the rest first), so fixed ClusterIPs
chosen by tests come from there (``service_ip``); ``.1`` is the ``kubernetes`` Service.
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
#: Where a block's Service CIDR starts (third octet) and its prefix length.
SERVICE_OCTET = 240
SERVICE_PREFIX = 20
#: Addresses at the start of the Service CIDR that the API server allocates only on request.
STATIC_BAND = 256


class PodNetwork:
    """A ``127.N.0.0/16`` block, held exclusively when ``lock`` is given."""

    def __init__(self, block: int, lock: IO[str] | None = None) -> None:
        if not 1 <= block <= 254:
            raise ValueError(f"pod network block must be 1..254, not {block}")
        self.block = block
        self.network = ipaddress.IPv4Network(f"127.{block}.0.0/16")
        self.services = ipaddress.IPv4Network(f"127.{block}.{SERVICE_OCTET}.0/{SERVICE_PREFIX}")
        self._lock = lock

    @classmethod
    def claim(cls, lock_dir: Path = LOCK_DIR) -> PodNetwork:
        """The first block no other running cluster holds."""
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
        raise RuntimeError(f"every pod network block under {lock_dir} is held by a running cluster")

    def addresses(self) -> Iterator[str]:
        """Pod IPs in order, below the Service CIDR, skipping .0, .1 and .255 of every /24."""
        return (
            str(ip)
            for ip in self.network.hosts()
            if ip < self.services.network_address and int(ip) & 0xFF not in (0, 1, 255)
        )

    def service_ip(self, offset: int) -> str:
        """The ClusterIP ``offset`` addresses into the static band (2..255; 1 is taken by
        the ``kubernetes`` Service)."""
        if not 2 <= offset < STATIC_BAND:
            raise ValueError(f"service IP offset must be 2..{STATIC_BAND - 1}, not {offset}")
        return str(self.services.network_address + offset)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None
