"""A real, throw-away Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and (optionally) a process node that runs
pods as local processes and proxies Services to their ready pods, as kube-proxy does.

Each cluster holds a loopback block ``127.N.0.0/16`` of its own for its life (see
``shiftboss.testing.node.network``): pods take addresses in it, and its
``127.N.240.0/20`` is the Service CIDR, so a test reaches a Service at its ClusterIP.
The node runs commands, not images: ``load_image`` (or ``images=``) gives an image the
directory its containers run in, as ``kind load docker-image`` gives a kind node an image.

    with LocalCluster() as cluster:
        cluster.kubectl("get", "nodes")
        with cluster.frozen_apiserver():  # SIGSTOP: requests hang until the block ends
            ...

Binaries come from ``$SHIFTBOSS_K8S_BIN`` or the cache that ``make control-plane``
fills (``~/.cache/shiftboss/k8s-v<version>-etcd-v<version>/bin``): see ``kubectl``.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

from shiftboss.testing.kubectl import ExistingCluster, KubectlMixin, find_binaries
from shiftboss.testing.node.images import load_image
from shiftboss.testing.node.network import STATIC_BAND, PodNetwork
from shiftboss.testing.pki import Pki, write_pki
from shiftboss.testing.processes import ManagedProcess, wait_until

__all__ = ["ClusterStartError", "ExistingCluster", "LocalCluster", "find_binaries", "free_port"]

ISSUER = "https://kubernetes.default.svc.cluster.local"


class ClusterStartError(RuntimeError):
    """A component did not come up; the message carries its log tail and the log directory."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalCluster(KubectlMixin):
    """Start with ``start()`` (or ``with``); ``stop()`` ends every process it started."""

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        workdir: Path | None = None,
        node: bool = True,
        node_name: str = "process-node",
        keep_workdir: bool = False,
        crds: list[Path] | None = None,
        images: dict[str, Path] | None = None,
    ) -> None:
        self.bin_dir = Path(bin_dir) if bin_dir else find_binaries()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="shiftboss-cluster-"))
        self.with_node = node
        self.node_name = node_name
        self.keep_workdir = keep_workdir
        #: CRD files or directories applied before the controllers start, so that the
        #: garbage collector knows the custom resources from its first discovery.
        self.crds = [Path(p) for p in crds or []]
        self.node_workdir = self.workdir / "node"
        for image, directory in (images or {}).items():
            self.load_image(image, directory)
        self.logs = self.workdir / "logs"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.processes: list[ManagedProcess] = []
        self.api_port = 0
        self.pki: Pki | None = None
        self.network: PodNetwork | None = None
        self.failed = False

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.failed = self.failed or exc_type is not None
        self.stop()

    def start(self, timeout: float = 90.0) -> LocalCluster:
        started = time.monotonic()
        try:
            # The block first: the API server's certificate and flags name its Service CIDR.
            self.network = PodNetwork.claim()
            self.pki = write_pki(self.workdir / "pki", service_ip=str(self.service_cidr[1]))
            self._start_etcd(timeout)
            self._start_apiserver(timeout)
            self.write_kubeconfig()
            for path in self.crds:
                self.kubectl("apply", "--server-side", "-f", str(path))
            self._start_controllers()
            wait_until(
                lambda: (
                    self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0
                ),
                timeout=timeout,
                what="the service-account controller to create default/default",
            )
            if self.with_node:
                self._start_node(timeout)
        except Exception as exc:
            self.failed = True
            tails = self._failed_tails()
            self.stop()
            raise ClusterStartError(f"{exc}\ncomponent logs: {self.logs}\n{tails}") from exc
        self.start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        for proc in self.processes:  # a frozen API server would stall the others' shutdown
            proc.thaw()
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        if self.network is not None:
            self.network.release()
            self.network = None
        if self._own_workdir and not self.keep_workdir and not self.failed:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- components -----------------------------------------------------------------

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.logs / f"{name}.log", env=env).start()
        self.processes.append(proc)
        return proc

    def _check_alive(self, proc: ManagedProcess) -> None:
        if not proc.running():
            raise ClusterStartError(f"{proc.name} exited with code {proc.exit_code()}")

    def _start_etcd(self, timeout: float) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        etcd = self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=default",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            self._check_alive(etcd)
            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as r:
                return bool(json.load(r).get("health") == "true")

        wait_until(healthy, timeout=timeout, what="etcd /health")

    def _start_apiserver(self, timeout: float) -> None:
        assert self.pki
        p = self.pki.file
        self.api_port = free_port()
        self._apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                f"--secure-port={self.api_port}",
                "--bind-address=127.0.0.1",
                # Machines without a default route have no address to advertise: use
                # loopback, and skip the endpoint reconciler that refuses a loopback address.
                "--advertise-address=127.0.0.1",
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={p('apiserver.crt')}",
                f"--tls-private-key-file={p('apiserver.key')}",
                f"--client-ca-file={p('ca.crt')}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={p('sa.pub')}",
                f"--service-account-signing-key-file={p('sa.key')}",
                f"--service-cluster-ip-range={self.service_cidr}",
                f"--kubelet-client-certificate={p('kubelet-client.crt')}",
                f"--kubelet-client-key={p('kubelet-client.key')}",
                "--kubelet-preferred-address-types=InternalIP",
                "--allow-privileged=true",
                "--profiling=false",
                # A test cluster serves one busy client; the default fairness limits only slow it.
                "--enable-priority-and-fairness=false",
                "--max-requests-inflight=1000",
                "--max-mutating-requests-inflight=500",
                "--event-ttl=1h",
                "--v=1",
            ],
        )
        self._wait_apiserver_ready(timeout)

    def _wait_apiserver_ready(self, timeout: float) -> None:
        assert self.pki
        ctx = ssl.create_default_context(cafile=str(self.pki.file("ca.crt")))
        ctx.load_cert_chain(str(self.pki.file("admin.crt")), str(self.pki.file("admin.key")))

        def ready() -> bool:
            self._check_alive(self._apiserver)
            url = f"https://127.0.0.1:{self.api_port}/readyz"
            with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
                return bool(r.status == 200)

        wait_until(ready, timeout=timeout, what="kube-apiserver /readyz")

    def restart_apiserver(self, down_seconds: float = 0.0, timeout: float = 90.0) -> None:
        """Stop kube-apiserver, keep it down a while, start it again on the same port."""
        self._apiserver.stop()
        time.sleep(down_seconds)
        self._apiserver.start()
        self._wait_apiserver_ready(timeout)

    def freeze_apiserver(self) -> None:
        """SIGSTOP kube-apiserver: connections are accepted by the kernel but nothing is
        answered, so every request times out, until ``thaw_apiserver()``."""
        self._apiserver.freeze()

    def thaw_apiserver(self) -> None:
        self._apiserver.thaw()

    @contextlib.contextmanager
    def frozen_apiserver(self) -> Iterator[None]:
        """``freeze_apiserver()`` for the duration of a ``with`` block."""
        self.freeze_apiserver()
        try:
            yield
        finally:
            self.thaw_apiserver()

    def load_image(self, image: str, directory: Path) -> Path:
        """Load ``image`` into the process node, as ``kind load docker-image`` would: its
        containers without a ``workingDir`` run in ``directory`` (its WORKDIR).  Load an
        image before its pods start; loading again replaces it for pods started later."""
        return load_image(self.node_workdir, image, directory)

    @property
    def _network(self) -> PodNetwork:
        if self.network is None:
            raise RuntimeError("the cluster is not started: it holds no loopback block")
        return self.network

    @property
    def service_cidr(self) -> ipaddress.IPv4Network:
        """The Service CIDR (``127.N.240.0/20``); the process node proxies ClusterIPs in it."""
        return self._network.services

    def service_ip(self, offset: int) -> str:
        """A fixed ClusterIP for a test (``spec.clusterIP``): ``offset`` (2..255) into the
        static band, which the API server never hands out on its own."""
        return self._network.service_ip(offset)

    def free_service_ip(self) -> str:
        """The first static-band ClusterIP no Service holds now (Services of a namespace
        being deleted still hold theirs)."""
        taken = {
            item["spec"].get("clusterIP")
            for item in self.get_json("services", "--all-namespaces")["items"]
        }
        for offset in range(2, STATIC_BAND):
            ip = self.service_ip(offset)
            if ip not in taken:
                return ip
        raise RuntimeError(f"every static ClusterIP of {self.service_cidr} is taken")

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def write_kubeconfig(self, path: Path | None = None, *, server: str | None = None) -> Path:
        """An admin kubeconfig for this cluster at ``path`` (default: ``self.kubeconfig``),
        pointing at ``server`` (default: the API server; e.g. a proxy in front of it)."""
        assert self.pki
        path = path or self.kubeconfig
        pki = self.pki

        def b64(name: str) -> str:
            return base64.b64encode(pki.file(name).read_bytes()).decode()

        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "local",
                    "cluster": {
                        "server": server or self.server,
                        "certificate-authority-data": b64("ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "admin",
                    "user": {
                        "client-certificate-data": b64("admin.crt"),
                        "client-key-data": b64("admin.key"),
                    },
                }
            ],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def _start_controllers(self) -> None:
        assert self.pki
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                # Endpoints and EndpointSlices may not hold loopback addresses, which every
                # pod IP here is: the process node routes Services from pods itself.
                "--controllers=*,-endpoints-controller,-endpointslice-controller",
                f"--root-ca-file={self.pki.file('ca.crt')}",
                f"--service-account-private-key-file={self.pki.file('sa.key')}",
                "--use-service-account-credentials=false",
                # Notice a dead process node quickly, and sync faster than production would.
                "--node-monitor-grace-period=40s",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                "--v=1",
            ],
        )

    def _start_node(self, timeout: float) -> None:
        node = self._spawn(
            "process-node",
            [
                sys.executable,
                "-m",
                "shiftboss.testing.node",
                f"--kubeconfig={self.kubeconfig}",
                f"--name={self.node_name}",
                f"--workdir={self.node_workdir}",
                f"--pod-block={self._network.block}",
            ],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

        def schedulable() -> bool:
            self._check_alive(node)
            out = self.kubectl("get", "node", self.node_name, "-o", "json", check=False)
            if out.returncode:
                return False
            doc = json.loads(out.stdout)
            ready = any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in doc.get("status", {}).get("conditions", [])
            )
            taints = [t for t in doc["spec"].get("taints", []) if t["effect"] != "PreferNoSchedule"]
            return ready and not taints

        wait_until(schedulable, timeout=timeout, what=f"node {self.node_name} Ready and untainted")

    # -- helpers ----------------------------------------------------------------------

    def kubectl_binary(self) -> str:
        return str(self.bin_dir / "kubectl")

    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should talk to this cluster."""
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}",
        }

    def _failed_tails(self) -> str:
        parts = []
        for proc in self.processes or []:
            parts.append(f"--- {proc.name} (last lines of {proc.log}) ---\n{proc.tail(15)}")
        return "\n".join(parts)
