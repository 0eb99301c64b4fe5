"""The process node: a kubelet stand-in that runs the pods bound to it as local processes.

It registers a ``Node``, renews its ``Lease`` in ``kube-node-lease`` (so the node
lifecycle controller keeps it Ready and untainted), watches the pods bound to it and
hands each to a ``PodRunner``.  Every pod gets its own loopback address (127.N.x.y,
N held by this node's cluster alone: see ``network``) as its pod IP, so two pods can
listen on the same port, and two nodes on one machine never hand out the same address.
It also stands in for kube-proxy: Services in the block's Service CIDR answer at their
ClusterIP (see ``serviceproxy``), and for cluster DNS, for Python processes (see ``dns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

import httpx

from shiftboss.kube.client import LEASES, NODES, PODS, ApiError, KubeClient
from shiftboss.kube.config import KubeConfig
from shiftboss.testing.node.dns import HostsFile, hosts_file
from shiftboss.testing.node.logs_server import LogsServer
from shiftboss.testing.node.network import PodNetwork
from shiftboss.testing.node.pod import NodeContext, PodRunner, now
from shiftboss.testing.node.serviceproxy import ServiceProxy

log = logging.getLogger("shiftboss.node")

LEASE_SECONDS = 40
LEASE_RENEW_SECONDS = 10
STATUS_HEARTBEAT_SECONDS = 30


def _micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ProcessNode:
    def __init__(
        self,
        config: KubeConfig,
        name: str,
        workdir: Path,
        network: PodNetwork,
        *,
        host_ip: str = "127.0.0.1",
    ) -> None:
        self.config, self.name, self.workdir, self.host_ip = config, name, workdir, host_ip
        self.client = KubeClient(config)
        self.runners: dict[str, PodRunner] = {}
        self.pod_network = network
        self.services = ServiceProxy(self.client, network.services, HostsFile(hosts_file(workdir)))
        self._ips = self.pod_network.addresses()
        self._used_ips: set[str] = set()
        self.logs = LogsServer(self)

    def context(self) -> NodeContext:
        # Worker processes find `shiftboss-worker` and `python` of this environment first.
        path = os.pathsep.join(
            [str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")]
        )
        base_env = {
            "PATH": path,
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        }
        return NodeContext(
            self.client,
            self.name,
            self.host_ip,
            self.workdir,
            base_env,
            self.config.server,
            self.config.ca_file,
        )

    async def run(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = await self.logs.start(self.host_ip)
        await self._register(port)
        tasks = [
            asyncio.create_task(self._heartbeat()),
            asyncio.create_task(self._watch_pods()),
            asyncio.create_task(self.services.run()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await self.shutdown()

    async def shutdown(self) -> None:
        """Stop every pod process (the pods themselves stay, as when a kubelet stops)."""
        tasks = [r.task for r in self.runners.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.logs.stop()
        await self.client.close()
        self.pod_network.release()

    # -- node and lease -------------------------------------------------------------------

    def _node_status(self, port: int) -> dict[str, Any]:
        ts = now()
        conditions = [
            {
                "type": kind,
                "status": "False",
                "reason": f"No{kind}",
                "message": "process node",
                "lastHeartbeatTime": ts,
                "lastTransitionTime": ts,
            }
            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure")
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "ProcessNodeReady",
                "message": "process node is posting ready status",
                "lastHeartbeatTime": ts,
                "lastTransitionTime": ts,
            }
        )
        capacity = {"cpu": "32", "memory": "64Gi", "pods": "250", "ephemeral-storage": "100Gi"}
        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.host_ip},
                {"type": "Hostname", "address": self.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "nodeInfo": {
                "machineID": self.name,
                "systemUUID": self.name,
                "bootID": str(os.getpid()),
                "kernelVersion": platform.release(),
                "osImage": "shiftboss process node",
                "containerRuntimeVersion": "process://1",
                "kubeletVersion": "v0.0.0-process",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    async def _register(self, port: int) -> None:
        self._status = self._node_status(port)
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "shiftboss.io/process-node": "true",
                },
            },
            "status": self._status,
        }
        with contextlib.suppress(ApiError):
            await self.client.create(NODES.path(), node)
        await self.client.patch(
            NODES.path(name=self.name, subresource="status"), {"status": self._status}
        )
        log.info("node %s registered (kubelet port %d)", self.name, port)

    async def _heartbeat(self) -> None:
        lease_path = LEASES.path("kube-node-lease", self.name)
        last_status = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._renew_lease(lease_path)
                if loop.time() - last_status >= STATUS_HEARTBEAT_SECONDS:
                    ts = now()
                    for c in self._status["conditions"]:
                        c["lastHeartbeatTime"] = ts
                    await self.client.patch(
                        NODES.path(name=self.name, subresource="status"),
                        {"status": {"conditions": self._status["conditions"]}},
                    )
                    last_status = loop.time()
            except (ApiError, httpx.HTTPError) as exc:
                log.warning("node heartbeat failed: %s", exc)
            await asyncio.sleep(LEASE_RENEW_SECONDS)

    async def _renew_lease(self, path: str) -> None:
        spec = {
            "holderIdentity": self.name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": _micro_now(),
        }
        try:
            await self.client.patch(path, {"spec": spec})
        except ApiError as exc:
            if not exc.not_found:
                raise
            await self.client.create(
                LEASES.path("kube-node-lease"),
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": "kube-node-lease"},
                    "spec": spec,
                },
            )

    # -- pods ---------------------------------------------------------------------------

    async def _watch_pods(self) -> None:
        selector = f"spec.nodeName={self.name}"
        while True:
            try:
                listing = await self.client.get(PODS.path(), fieldSelector=selector)
                seen = set()
                for pod in listing.get("items", []):
                    seen.add(pod["metadata"]["uid"])
                    self._sync(pod)
                for uid in set(self.runners) - seen:
                    self.runners[uid].deleted()
                version = listing["metadata"]["resourceVersion"]
                while True:
                    async for event in self.client.watch(
                        PODS.path(), resource_version=version, fieldSelector=selector
                    ):
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise ApiError(
                                obj.get("code", 500), obj.get("reason", ""), obj.get("message", "")
                            )
                        version = obj["metadata"]["resourceVersion"]
                        if event["type"] == "BOOKMARK":
                            continue
                        if event["type"] == "DELETED":
                            runner = self.runners.get(obj["metadata"]["uid"])
                            if runner:
                                runner.deleted()
                        else:
                            self._sync(obj)
            except (ApiError, httpx.HTTPError) as exc:
                log.info("pod watch restarts: %s", exc)
                await asyncio.sleep(1)

    def _sync(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        runner = self.runners.get(uid)
        if runner:
            runner.update(pod)
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            return  # finished before this node started; nothing to run
        ip = (pod.get("status") or {}).get("podIP") or self._next_ip()
        self._used_ips.add(ip)
        runner = PodRunner(self.context(), pod, ip)
        runner.update(pod)
        self.runners[uid] = runner
        runner.task = asyncio.create_task(self._run(runner))
        log.info("pod %s/%s: starting with IP %s", runner.namespace, runner.name, ip)

    async def _run(self, runner: PodRunner) -> None:
        try:
            await runner.run()
        finally:
            self.runners.pop(runner.uid, None)
            self._used_ips.discard(runner.pod_ip)
            log.info("pod %s/%s: done", runner.namespace, runner.name)

    def _next_ip(self) -> str:
        for ip in self._ips:
            if ip not in self._used_ips:
                return ip
        raise RuntimeError("pod IP range exhausted")
