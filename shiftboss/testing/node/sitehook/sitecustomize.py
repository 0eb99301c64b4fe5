"""Cluster DNS for a pod's Python processes on the process node (stdlib only).

The node writes the ClusterIPs of Services by fully qualified name
(``<svc>.<ns>.svc.cluster.local``) to a JSON file; this hook wraps
``socket.getaddrinfo`` and ``socket.gethostbyname`` so that a name which, expanded by
the pod's DNS search path as the kubelet writes it into resolv.conf (``ndots:5``),
is in that file resolves to its ClusterIP.  Connections are still made by hostname
(TLS verifies the name); only the lookup changes.  Any other name, and any error in the
hook, goes to the real resolver untouched.  A ``sitecustomize`` later on ``sys.path``
(the one this hook hides) is run afterwards.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from importlib import machinery, util
from typing import Any

HOSTS_FILE_ENV = "SHIFTBOSS_NODE_HOSTS_FILE"
NAMESPACE_ENV = "SHIFTBOSS_NODE_POD_NAMESPACE"
CLUSTER_DOMAIN = "cluster.local"
#: The kubelet's resolv.conf option: names with fewer dots try the search path first.
NDOTS = 5

_real_getaddrinfo = socket.getaddrinfo
_real_gethostbyname = socket.gethostbyname
#: (the file's identity, its table): re-read when the node replaces or rewrites it.
_cache: tuple[tuple[int, int, int], dict[str, str]] = ((0, 0, 0), {})


def search_domains(namespace: str) -> list[str]:
    """The pod's search path (``<ns>.svc.cluster.local svc.cluster.local cluster.local``)."""
    common = [f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
    return [f"{namespace}.svc.{CLUSTER_DOMAIN}", *common] if namespace else common


def candidates(name: str, namespace: str) -> list[str]:
    """The names a resolver asks for, in order, as glibc does with ``search`` and ``ndots``."""
    name = name.lower()
    if name.endswith("."):
        return [name[:-1]]
    expanded = [f"{name}.{domain}" for domain in search_domains(namespace)]
    return [name, *expanded] if name.count(".") >= NDOTS else [*expanded, name]


def load_table(path: str) -> dict[str, str]:
    """The node's table, read again only when the file changed (it is replaced atomically)."""
    global _cache
    st = os.stat(path)
    key = (st.st_ino, st.st_mtime_ns, st.st_size)
    if _cache[0] != key:
        with open(path, encoding="utf-8") as f:
            _cache = (key, dict(json.load(f)))
    return _cache[1]


def lookup(host: object) -> str | None:
    """The ClusterIP of ``host``, or None to leave it to the real resolver (also on any error)."""
    try:
        path = os.environ.get(HOSTS_FILE_ENV)
        if not path or not isinstance(host, (str, bytes)):
            return None
        name = host.decode("ascii") if isinstance(host, bytes) else host
        table = load_table(path)
        namespace = os.environ.get(NAMESPACE_ENV, "")
        return next((table[n] for n in candidates(name, namespace) if n in table), None)
    except Exception:
        return None


def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    return _real_getaddrinfo(lookup(host) or host, port, *args, **kwargs)


def gethostbyname(host: Any) -> Any:
    return lookup(host) or _real_gethostbyname(host)


def install() -> None:
    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname


def chain() -> None:
    """Run the ``sitecustomize`` this one hides, as ``site`` would have, under its own name."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if __name__ == "sitecustomize":  # run by ``site`` at startup; importing it elsewhere does nothing
    install()
    chain()
