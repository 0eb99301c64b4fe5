"""``ApiServerProxy``: a ``FaultProxy`` in front of a ``LocalCluster``'s kube-apiserver,
for the connection of one client (typically the operator under test).

It terminates TLS with the API server's own serving certificate (signed by the
cluster's CA and valid for 127.0.0.1), so clients verify it with the cluster's CA as
usual, and forwards every request with the cluster's admin client certificate. Its
``kubeconfig`` points at the proxy: give ``env()`` to an ``OperatorProcess`` and the
operator talks through the proxy, while the test and kubectl talk to the API server
directly.
"""

from __future__ import annotations

import json
import ssl
import uuid
from pathlib import Path

from shiftboss.testing.cluster import LocalCluster
from shiftboss.testing.faults.proxy import FaultProxy


class ApiServerProxy(FaultProxy):
    def __init__(self, cluster: LocalCluster, *, kubeconfig: Path | None = None) -> None:
        if cluster.pki is None or not cluster.api_port:
            raise RuntimeError("start the LocalCluster before putting a proxy in front of it")
        pki = cluster.pki
        upstream_tls = ssl.create_default_context(cafile=str(pki.file("ca.crt")))
        upstream_tls.load_cert_chain(str(pki.file("admin.crt")), str(pki.file("admin.key")))
        server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_tls.load_cert_chain(str(pki.file("apiserver.crt")), str(pki.file("apiserver.key")))
        server_tls.set_alpn_protocols(["http/1.1"])  # no HTTP/2: the proxy speaks HTTP/1.1
        super().__init__(cluster.server, upstream_tls=upstream_tls, server_tls=server_tls)
        self.cluster = cluster
        #: Written by ``start()``: the cluster's admin kubeconfig, with the proxy as server.
        self.kubeconfig = kubeconfig or cluster.workdir / f"kubeconfig-proxy-{uuid.uuid4().hex[:8]}"

    def start(self) -> ApiServerProxy:
        super().start()
        self.cluster.write_kubeconfig(self.kubeconfig, server=self.url)
        return self

    def __enter__(self) -> ApiServerProxy:
        return self.start()

    def env(self) -> dict[str, str]:
        """The cluster's ``env()`` with ``KUBECONFIG`` pointing at the proxy."""
        return {**self.cluster.env(), "KUBECONFIG": str(self.kubeconfig)}


def kube_status(status: int, reason: str, message: str) -> bytes:
    """A Kubernetes ``Status`` body, as the API server sends with an error, for
    ``proxy.respond(429, kube_status(429, "TooManyRequests", "slow down"), ...)``."""
    doc = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": status,
    }
    return json.dumps(doc).encode()
