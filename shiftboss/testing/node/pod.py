"""One pod bound to the process node: its containers run as local processes.

The runner owns the pod's status while the pod lives: phase, conditions, container
states, restarts (per the restart policy, with backoff), readiness probes, and the
kubelet's part of deletion (SIGTERM, grace period, SIGKILL, final DELETE).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from shiftboss.kube.client import PODS, ApiError, KubeClient
from shiftboss.testing.node.env import EnvError, command_line, container_env, translate_paths
from shiftboss.testing.node.volumes import VolumeBuilder, Volumes
from shiftboss.testing.processes import _die_with_parent

log = logging.getLogger("shiftboss.node")

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: Restart backoff: 1 s doubling up to this cap (the kubelet's cap is 300 s; tests need less).
MAX_RESTART_BACKOFF = 10.0


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


@dataclass
class ContainerState:
    spec: dict[str, Any]
    proc: asyncio.subprocess.Process | None = None
    restart_count: int = 0
    state: dict[str, Any] = field(
        default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}}
    )
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    exit_code: int | None = None

    @property
    def name(self) -> str:
        return self.spec["name"]

    def status(self) -> dict[str, Any]:
        pid = self.proc.pid if self.proc else 0
        return {
            "name": self.name,
            "image": self.spec.get("image") or "process",
            "imageID": "",
            "containerID": f"process://{pid}",
            "ready": self.ready,
            "started": "running" in self.state,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }


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
                envs = await self._prepare()
                if envs is not None:
                    await self._run_containers(envs)
            await self._finish()
        except asyncio.CancelledError:
            await self._kill_all(grace=2)
            raise
        except Exception:
            log.exception("pod %s/%s: runner failed", self.namespace, self.name)
            await self._kill_all(grace=2)

    async def _prepare(self) -> dict[str, tuple[list[str], dict[str, str], Path]] | None:
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
                return {c.name: self._container_plan(c.spec, lookups) for c in every}
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
    ) -> dict[tuple[str, str], dict[str, str] | None]:
        wanted: set[tuple[str, str]] = set()
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

    def _container_plan(
        self, spec: dict[str, Any], lookups
    ) -> tuple[list[str], dict[str, str], Path]:
        def lookup(kind: str, name: str, key: str):
            data = lookups.get((kind, name))
            if data is None:
                return None
            return data if key == "*" else data.get(key)

        mounts = []
        for m in spec.get("volumeMounts") or []:
            host = self.volumes.mounts.get(m["name"])
            if host is None:
                raise EnvError(f"container {spec['name']!r} mounts unknown volume {m['name']!r}")
            mounts.append((m["mountPath"], str(host / m.get("subPath", "")).rstrip("/")))
        base = dict(self.node.base_env)
        kubeconfig = self._pod_kubeconfig(mounts)
        if kubeconfig:
            base["KUBECONFIG"] = str(kubeconfig)
        env = container_env(
            self.pod, spec, base=base, lookup=lookup, pod_ip=self.pod_ip, host_ip=self.node.host_ip
        )
        env = {k: translate_paths(v, mounts) for k, v in env.items()}
        argv = [translate_paths(a, mounts) for a in command_line(spec, env)]
        cwd = (
            Path(translate_paths(spec["workingDir"], mounts))
            if spec.get("workingDir")
            else self.dir
        )
        if not cwd.is_dir():
            cwd = self.dir
        return argv, env, cwd

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

    async def _run_containers(
        self, plans: dict[str, tuple[list[str], dict[str, str], Path]]
    ) -> None:
        self.start_time = now()
        helpers = [
            asyncio.create_task(self._status_writer()),
            asyncio.create_task(self._renew_tokens()),
        ]
        try:
            # Init containers run one after the other; each must succeed before the next.
            init_policy = "Never" if self.restart_policy == "Never" else "OnFailure"
            for c in self.init_containers:
                await self._supervise(c, *plans[c.name], policy=init_policy)
                if self.terminating.is_set():
                    return
                if c.exit_code:
                    self.phase = "Failed"
                    return
            self.initialized = True
            self.phase = "Running"
            helpers += [
                asyncio.create_task(self._readiness(c, plans[c.name][1]))
                for c in self.containers
                if c.spec.get("readinessProbe")
            ]
            await asyncio.gather(
                *(
                    self._supervise(c, *plans[c.name], policy=self.restart_policy)
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

    async def _supervise(
        self, c: ContainerState, argv: list[str], env: dict[str, str], cwd: Path, *, policy: str
    ) -> None:
        backoff = 1.0
        while not self.terminating.is_set():
            started = now()
            try:
                with open(self.log_path(c.name), "ab") as out:
                    c.proc = await asyncio.create_subprocess_exec(
                        *argv,
                        env=env,
                        cwd=cwd,
                        stdout=out,
                        stderr=asyncio.subprocess.STDOUT,
                        stdin=asyncio.subprocess.DEVNULL,
                        start_new_session=True,
                        preexec_fn=_die_with_parent,
                    )
            except OSError as exc:
                code, reason, message = 128, "StartError", f"cannot run {argv[0]!r}: {exc.strerror}"
            else:
                c.state = {"running": {"startedAt": started}}
                c.ready = not c.spec.get("readinessProbe")
                self._dirty.set()
                code = await self._wait_or_terminate(c.proc)
                reason = "Completed" if code == 0 else "Error"
                message = ""
            c.exit_code = code
            c.ready = False
            c.state = {
                "terminated": {
                    "exitCode": code,
                    "reason": reason,
                    "startedAt": started,
                    "finishedAt": now(),
                    "containerID": f"process://{c.proc.pid if c.proc else 0}",
                    **({"message": message} if message else {}),
                }
            }
            self._dirty.set()
            restart = policy == "Always" or (policy == "OnFailure" and code != 0)
            if not restart or self.terminating.is_set():
                return
            c.last_state = c.state
            c.state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {backoff:.0f}s restarting failed container",
                }
            }
            c.restart_count += 1
            self._dirty.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.terminating.wait(), backoff)
            backoff = min(backoff * 2, MAX_RESTART_BACKOFF)

    async def _wait_or_terminate(self, proc: asyncio.subprocess.Process) -> int:
        exit_wait = asyncio.ensure_future(proc.wait())
        term_wait = asyncio.ensure_future(self.terminating.wait())
        done, _ = await asyncio.wait({exit_wait, term_wait}, return_when=asyncio.FIRST_COMPLETED)
        term_wait.cancel()
        if exit_wait not in done:
            await self._stop_process(proc, self._grace_seconds())
        return await exit_wait

    def _grace_seconds(self) -> float:
        if self.gone.is_set():
            return 0
        meta = self.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(grace)

    @staticmethod
    async def _stop_process(proc: asyncio.subprocess.Process, grace: float) -> None:
        """SIGTERM the container's process group, SIGKILL what is left after the grace period."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), grace)
        # Also reaches children the leader left behind in its group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)

    async def _kill_all(self, grace: float) -> None:
        await asyncio.gather(
            *(
                self._stop_process(c.proc, grace)
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
            try:
                await self.node.client.patch(
                    PODS.path(self.namespace, self.name, "status"), {"status": self._status()}
                )
            except ApiError as exc:
                if not exc.not_found:
                    log.warning(
                        "pod %s/%s: status update failed: %s", self.namespace, self.name, exc
                    )
            except httpx.HTTPError as exc:
                log.warning("pod %s/%s: status update failed: %s", self.namespace, self.name, exc)

    def _status(self) -> dict[str, Any]:
        ts = now()
        running = self.phase == "Running"
        all_ready = running and all(c.ready for c in self.containers)
        conditions = {c["type"]: c for c in (self.pod.get("status") or {}).get("conditions") or []}

        def cond(kind: str, ok: bool, reason: str = "") -> None:
            previous = conditions.get(kind, {})
            status = "True" if ok else "False"
            changed = previous.get("status") != status
            conditions[kind] = {
                "type": kind,
                "status": status,
                "lastTransitionTime": ts if changed else previous.get("lastTransitionTime", ts),
                **({"reason": reason} if reason and not ok else {}),
            }

        cond("PodReadyToStartContainers", self.phase != "Pending")
        cond("Initialized", self.initialized, "ContainersNotInitialized")
        cond("ContainersReady", all_ready, "ContainersNotReady")
        cond(
            "Ready",
            all_ready,
            "PodCompleted" if self.phase in ("Succeeded", "Failed") else "ContainersNotReady",
        )
        status: dict[str, Any] = {
            "phase": self.phase,
            "conditions": list(conditions.values()),
            "hostIP": self.node.host_ip,
            "hostIPs": [{"ip": self.node.host_ip}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        if self.start_time:
            status["startTime"] = self.start_time
        return status

    # -- probes and tokens ------------------------------------------------------------------

    async def _readiness(self, c: ContainerState, env: dict[str, str]) -> None:
        probe = c.spec["readinessProbe"]
        period = probe.get("periodSeconds", 10)
        timeout = probe.get("timeoutSeconds", 1)
        success_needed = probe.get("successThreshold", 1)
        failures_allowed = probe.get("failureThreshold", 3)
        successes = failures = 0
        await asyncio.sleep(probe.get("initialDelaySeconds", 0))
        while True:
            if "running" in c.state:
                ok = await self._probe(probe, c.spec, env, timeout)
                successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
                ready = c.ready
                if ok and successes >= success_needed:
                    ready = True
                elif not ok and failures >= failures_allowed:
                    ready = False
                if ready != c.ready:
                    c.ready = ready
                    self._dirty.set()
            await asyncio.sleep(period)

    async def _probe(
        self, probe: dict[str, Any], spec: dict[str, Any], env: dict[str, str], timeout: float
    ) -> bool:
        def port_of(value: int | str) -> int:
            if isinstance(value, int) or str(value).isdigit():
                return int(value)
            for p in spec.get("ports") or []:
                if p.get("name") == value:
                    return int(p["containerPort"])
            raise ValueError(f"unknown port name {value!r}")

        try:
            if "httpGet" in probe:
                get = probe["httpGet"]
                scheme = get.get("scheme", "HTTP").lower()
                url = f"{scheme}://{get.get('host') or self.pod_ip}:{port_of(get['port'])}{get.get('path', '/')}"
                async with httpx.AsyncClient(verify=False, timeout=timeout) as http:
                    response = await http.get(url)
                return 200 <= response.status_code < 400
            if "tcpSocket" in probe:
                port = port_of(probe["tcpSocket"]["port"])
                host = probe["tcpSocket"].get("host") or self.pod_ip
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                writer.close()
                return True
            if "exec" in probe:
                proc = await asyncio.create_subprocess_exec(
                    *probe["exec"]["command"],
                    env=env,
                    cwd=self.dir,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                try:
                    return await asyncio.wait_for(proc.wait(), timeout) == 0
                except TimeoutError:
                    proc.kill()
                    return False
        except (OSError, httpx.HTTPError, TimeoutError, ValueError, socket.gaierror):
            return False
        return False

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
