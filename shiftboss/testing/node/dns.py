"""Cluster DNS names of Services for the pods on the process node.

There is no cluster DNS server: processes use the machine's resolver, which knows no
``<svc>.<ns>.svc``.  Instead the node keeps a hosts table, ``<svc>.<ns>.svc.cluster.local``
-> ClusterIP for every Service that has one, in a JSON file in its workdir (rewritten
atomically whenever it changes), and starts every container with the ``sitehook``
directory first on ``PYTHONPATH``: its ``sitecustomize`` makes Python's resolver answer
those names, expanded by the pod's search path (so ``<svc>``, ``<svc>.<ns>`` and
``<svc>.<ns>.svc`` resolve too, as in a pod).  Not covered: headless Services (no
ClusterIP, so no A records here), ExternalName Services, and programs that do not resolve
through Python's ``socket`` module: Go binaries (pure-Go resolver) must be given IP URLs,
and uvloop's event loop (the operator's) resolves through libuv, so it does not see them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from shiftboss.testing.node.servicetable import Service
from shiftboss.testing.node.sitehook import HOOK_DIR
from shiftboss.testing.node.sitehook.sitecustomize import (
    CLUSTER_DOMAIN,
    HOSTS_FILE_ENV,
    NAMESPACE_ENV,
)

log = logging.getLogger("shiftboss.node.dns")

HOSTS_FILE = "cluster-dns.json"


def hosts_file(workdir: Path) -> Path:
    """Where a node whose workdir is ``workdir`` keeps its table."""
    return workdir.absolute() / HOSTS_FILE  # pods run in other directories


def hosts_table(services: Iterable[Service]) -> dict[str, str]:
    """Fully qualified name -> ClusterIP of every Service with an address (not headless)."""
    table = {}
    for service in services:
        try:
            ip = ipaddress.ip_address(service.spec.cluster_ip or "")
        except ValueError:  # None (headless), or not allocated yet
            continue
        meta = service.metadata
        table[f"{meta.name}.{meta.namespace}.svc.{CLUSTER_DOMAIN}".lower()] = str(ip)
    return dict(sorted(table.items()))


def pod_env(env: Mapping[str, str], namespace: str, hosts: Path) -> dict[str, str]:
    """A container's environment with the hook first on ``PYTHONPATH`` (the pod's own after)."""
    path = [str(HOOK_DIR), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(path),
        HOSTS_FILE_ENV: str(hosts),
        NAMESPACE_ENV: namespace,
    }


class HostsFile:
    """The table as written to ``path``: ``update()`` rewrites it when it changed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._written: dict[str, str] | None = None

    def update(self, services: Iterable[Service]) -> None:
        table = hosts_table(services)
        if table == self._written:
            return
        try:
            write_atomically(self.path, json.dumps(table, indent=1))
        except OSError as exc:  # tried again on the next change or resync
            log.warning("cannot write %s: %s", self.path, exc)
            return
        self._written = table


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a part of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
