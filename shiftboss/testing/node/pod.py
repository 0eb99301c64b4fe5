"""One pod bound to the process node: its containers run as local processes.

The runner owns the pod's status while the pod lives: phase, conditions, container
states, restarts (per the restart policy, with backoff), readiness probes, and the
kubelet's part of deletion (SIGTERM, grace period, SIGKILL, final DELETE).  The parts:
``container`` (one container's process and status), ``termination`` (the exit's
message), ``probes``, ``podstatus``, ``volumes`` and ``env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from shiftboss.kube.client import PODS, ApiError, KubeClient
from shiftboss.testing.node.container import (
    ContainerState,
    Launch,
    now,
    stop_process,
    supervise,
)
from shiftboss.testing.node.dns import hosts_file, pod_env
from shiftboss.testing.node.env import EnvError, command_line, container_env, translate_paths
from shiftboss.testing.node.images import image_path
from shiftboss.testing.node.podstatus import pod_status
from shiftboss.testing.node.probes import keep_readiness
from shiftboss.testing.node.termination import DEFAULT_MESSAGE_PATH
from shiftboss.testing.node.volumes import VolumeBuilder, Volumes

__all__ = ["NodeContext", "PodRunner", "now"]

log = logging.getLogger("shiftboss.node")

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: Mount paths left as they are: processes share the host's filesystem, whose /tmp is
#: writable already, and host paths under it (a test's files) must stay reachable.  A
#: restricted pod mounts an emptyDir there only because its root filesystem is read-only.
UNTRANSLATED_MOUNTS = frozenset({"/tmp"})

#: A secret or config map the pod's environment reads: ("secret" | "configmap", name).
ConfigKey = tuple[str, str]


@dataclass
class NodeContext:
    """What every pod runner needs from its node."""

    client: KubeClient
    name: str
    host_ip: str
    workdir: Path
    base_env: dict[str, str]
    api_server: str
    ca_file: str | None

    def image_dir(self, image: str | None) -> Path:
        """The working directory of containers of ``image`` without a ``workingDir``.

        It stands in for the image's WORKDIR: the same for every pod of the image (as
        it would be in a cluster), so that what a program says about its directory
        (an import error, say) reads the same from every replica.
        """
        path = image_path(self.workdir, image)  # a symlink when the image was loaded
        path.mkdir(parents=True, exist_ok=True)
        return path


class PodRunner:
    def __init__(self, node: NodeContext, pod: dict[str, Any], pod_ip: str) -> None:
        self.node, self.pod, self.pod_ip = node, pod, pod_ip
        meta = pod["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = node.workdir / "pods" / f"{self.namespace}_{self.name}_{self.uid[:8]}"
        self.containers = [ContainerState(c) for c in pod["spec"]["containers"]]
        self.init_containers = [ContainerState(c) for c in pod["spec"].get("initContainers") or []]
        self.initialized = not self.init_containers
        self.restart_policy = pod["spec"].get("restartPolicy", "Always")
        self.phase = "Pending"
        self.start_time: str | None = None
        self.terminating = asyncio.Event()
        self.gone = asyncio.Event()  # the pod object no longer exists
        self._dirty = asyncio.Event()
        self._status_lock = asyncio.Lock()
        self.volumes = Volumes()
        self.task: asyncio.Task[None] | None = None

    def log_path(self, container: str) -> Path:
        return self.dir / "logs" / f"{container}.log"

    def message_path(self, container: str) -> Path:
        """The node's copy of the container's ``terminationMessagePath``."""
        return self.dir / "termination" / container

    # -- events from the node's watch ---------------------------------------------------

    def update(self, pod: dict[str, Any]) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.terminating.set()

    def deleted(self) -> None:
        self.gone.set()
        self.terminating.set()

    # -- main ---------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            if not self.terminating.is_set():
                launches = await self._prepare()
                if launches is not None:
                    await self._run_containers(launches)
            await self._finish()
        except asyncio.CancelledError:
            await self._kill_all(grace=2)
            raise
        except Exception:
            log.exception("pod %s/%s: runner failed", self.namespace, self.name)
            await self._kill_all(grace=2)

    async def _prepare(self) -> dict[str, Launch] | None:
        """Volumes, environment and argv per container; retried while config is missing."""
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        while not self.terminating.is_set():
            try:
                builder = VolumeBuilder(
                    self.node.client, self.pod, self.dir / "volumes", self.pod_ip, self.node.host_ip
                )
                self.volumes = await builder.build()
                lookups = await self._config_lookups(builder)
                every = [*self.init_containers, *self.containers]
                return {c.name: self._launch(c.spec, lookups) for c in every}
            except (EnvError, ApiError, OSError) as exc:
                log.warning("pod %s/%s: cannot start yet: %s", self.namespace, self.name, exc)
                for c in self.containers:
                    c.state = {
                        "waiting": {
                            "reason": "CreateContainerConfigError",
                            "message": str(exc)[:1000],
                        }
                    }
                await self._write_status()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.terminating.wait(), 2)
        return None

    async def _config_lookups(
        self, builder: VolumeBuilder
    ) -> dict[ConfigKey, dict[str, str] | None]:
        wanted: set[ConfigKey] = set()
        for c in self.pod["spec"]["containers"]:
            for var in c.get("env") or []:
                src = var.get("valueFrom") or {}
                if "secretKeyRef" in src:
                    wanted.add(("secret", src["secretKeyRef"]["name"]))
                if "configMapKeyRef" in src:
                    wanted.add(("configmap", src["configMapKeyRef"]["name"]))
            for src in c.get("envFrom") or []:
                if "secretRef" in src:
                    wanted.add(("secret", src["secretRef"]["name"]))
                if "configMapRef" in src:
                    wanted.add(("configmap", src["configMapRef"]["name"]))
        return {key: await builder.data(*key) for key in wanted}

    def _launch(
        self, spec: dict[str, Any], lookups: dict[ConfigKey, dict[str, str] | None]
    ) -> Launch:
        def lookup(kind: str, name: str, key: str) -> str | None:
            data = lookups.get((kind, name))
            if data is None:
                return None
            # "*" asks for the whole map (envFrom); the caller knows to expect one.
            return data if key == "*" else data.get(key)  # type: ignore[return-value]

        mounts = []
        for m in spec.get("volumeMounts") or []:
            host = self.volumes.mounts.get(m["name"])
            if host is None:
                raise EnvError(f"container {spec['name']!r} mounts unknown volume {m['name']!r}")
            if m["mountPath"].rstrip("/") in UNTRANSLATED_MOUNTS:
                continue
            mounts.append((m["mountPath"], str(host / m.get("subPath", "")).rstrip("/")))
        # The kubelet mounts an empty file at terminationMessagePath; here it is rewritten.
        message_file = self.message_path(spec["name"])
        mounts.append(
            (spec.get("terminationMessagePath") or DEFAULT_MESSAGE_PATH, str(message_file))
        )
        base = dict(self.node.base_env)
        kubeconfig = self._pod_kubeconfig(mounts)
        if kubeconfig:
            base["KUBECONFIG"] = str(kubeconfig)
        env = container_env(
            self.pod, spec, base=base, lookup=lookup, pod_ip=self.pod_ip, host_ip=self.node.host_ip
        )
        env = {k: translate_paths(v, mounts) for k, v in env.items()}
        argv = [translate_paths(a, mounts) for a in command_line(spec, env)]
        cwd = Path(translate_paths(spec["workingDir"], mounts)) if spec.get("workingDir") else None
        if cwd is None or not cwd.is_dir():
            cwd = self.node.image_dir(spec.get("image"))
        env = pod_env(env, self.namespace, hosts_file(self.node.workdir))
        return Launch(argv, env, cwd, self.log_path(spec["name"]), message_file)

    def _pod_kubeconfig(self, mounts: list[tuple[str, str]]) -> Path | None:
        """In-cluster credentials: a kubeconfig that uses the pod's own service-account token."""
        token = translate_paths(f"{SA_MOUNT}/token", mounts)
        if token.startswith(SA_MOUNT):
            return None  # automountServiceAccountToken: false
        path = self.dir / "kubeconfig"
        cluster: dict[str, Any] = {"server": self.node.api_server}
        if self.node.ca_file:
            cluster["certificate-authority"] = self.node.ca_file
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "in-cluster", "cluster": cluster}],
            "users": [{"name": "pod", "user": {"tokenFile": token}}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {
                        "cluster": "in-cluster",
                        "user": "pod",
                        "namespace": self.namespace,
                    },
                }
            ],
            "current-context": "in-cluster",
        }
        path.write_text(yaml.safe_dump(doc))
        return path

    async def _run_containers(self, launches: dict[str, Launch]) -> None:
        self.start_time = now()
        helpers = [
            asyncio.create_task(self._status_writer()),
            asyncio.create_task(self._renew_tokens()),
        ]
        try:
            # Init containers run one after the other; each must succeed before the next.
            init_policy = "Never" if self.restart_policy == "Never" else "OnFailure"
            for c in self.init_containers:
                await self._supervise(c, launches[c.name], init_policy)
                if self.terminating.is_set():
                    return
                if c.exit_code:
                    self.phase = "Failed"
                    return
            self.initialized = True
            self.phase = "Running"
            helpers += [
                asyncio.create_task(
                    keep_readiness(
                        c,
                        env=launches[c.name].env,
                        pod_ip=self.pod_ip,
                        cwd=self.dir,
                        changed=self._dirty.set,
                    )
                )
                for c in self.containers
                if c.spec.get("readinessProbe")
            ]
            await asyncio.gather(
                *(
                    self._supervise(c, launches[c.name], self.restart_policy)
                    for c in self.containers
                )
            )
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        if not self.terminating.is_set():
            failed = any(c.exit_code for c in self.containers)
            self.phase = "Failed" if failed else "Succeeded"

    async def _supervise(self, c: ContainerState, launch: Launch, policy: str) -> None:
        await supervise(
            c,
            launch,
            policy=policy,
            terminating=self.terminating,
            changed=self._dirty.set,
            grace_seconds=self._grace_seconds,
        )

    def _grace_seconds(self) -> float:
        if self.gone.is_set():
            return 0
        meta = self.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(grace)

    async def _kill_all(self, grace: float) -> None:
        await asyncio.gather(
            *(
                stop_process(c.proc, grace)
                for c in [*self.init_containers, *self.containers]
                if c.proc
            ),
            return_exceptions=True,
        )

    async def _finish(self) -> None:
        """Write the final status; if the pod is being deleted, complete the deletion."""
        await self._write_status()
        if not self.terminating.is_set():
            await self.terminating.wait()  # a finished pod stays until someone deletes it
        await self._kill_all(grace=self._grace_seconds())
        if self.gone.is_set():
            return
        try:
            await self.node.client.delete(
                PODS.path(self.namespace, self.name),
                {
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": self.uid},
                },
            )
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):
                raise

    # -- status ---------------------------------------------------------------------------

    async def _status_writer(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._write_status()
            await asyncio.sleep(0.05)  # coalesce bursts of changes into one write

    async def _write_status(self) -> None:
        if self.gone.is_set():
            return
        async with self._status_lock:
            status = pod_status(
                phase=self.phase,
                initialized=self.initialized,
                containers=self.containers,
                init_containers=self.init_containers,
                previous_conditions=(self.pod.get("status") or {}).get("conditions") or [],
                host_ip=self.node.host_ip,
                pod_ip=self.pod_ip,
                start_time=self.start_time,
                now=now(),
            )
            try:
                await self.node.client.patch(
                    PODS.path(self.namespace, self.name, "status"), {"status": status}
                )
            except ApiError as exc:
                if not exc.not_found:
                    log.warning(
                        "pod %s/%s: status update failed: %s", self.namespace, self.name, exc
                    )
            except httpx.HTTPError as exc:
                log.warning("pod %s/%s: status update failed: %s", self.namespace, self.name, exc)

    # -- tokens ---------------------------------------------------------------------------

    async def _renew_tokens(self) -> None:
        builder = VolumeBuilder(
            self.node.client, self.pod, self.dir / "volumes", self.pod_ip, self.node.host_ip
        )
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(5)
            for token in self.volumes.tokens:
                if loop.time() >= token.renew_at:
                    with contextlib.suppress(ApiError, httpx.HTTPError, OSError):
                        await builder.refresh_token(token)
