"""Readiness probes (httpGet, tcpSocket, exec), as the kubelet runs them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from shiftboss.testing.node.container import ContainerState


def _port(value: int | str, spec: dict[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    for port in spec.get("ports") or []:
        if port.get("name") == value:
            return int(port["containerPort"])
    raise ValueError(f"unknown port name {value!r}")


async def probe_once(
    probe: dict[str, Any],
    spec: dict[str, Any],
    *,
    env: dict[str, str],
    pod_ip: str,
    cwd: Path,
    timeout: float,
) -> bool:
    """One try of ``probe`` against a container of ``spec``; True when it passed."""
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            scheme = get.get("scheme", "HTTP").lower()
            host = get.get("host") or pod_ip
            url = f"{scheme}://{host}:{_port(get['port'], spec)}{get.get('path', '/')}"
            async with httpx.AsyncClient(verify=False, timeout=timeout) as http:
                response = await http.get(url)
            return 200 <= response.status_code < 400
        if "tcpSocket" in probe:
            port = _port(probe["tcpSocket"]["port"], spec)
            host = probe["tcpSocket"].get("host") or pod_ip
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            return True
        if "exec" in probe:
            proc = await asyncio.create_subprocess_exec(
                *probe["exec"]["command"],
                env=env,
                cwd=cwd,
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


async def keep_readiness(
    c: ContainerState,
    *,
    env: dict[str, str],
    pod_ip: str,
    cwd: Path,
    changed: Callable[[], None],
) -> None:
    """Probe ``c`` while it runs and flip ``c.ready`` per the probe's thresholds."""
    probe = c.spec["readinessProbe"]
    period = probe.get("periodSeconds", 10)
    timeout = probe.get("timeoutSeconds", 1)
    success_needed = probe.get("successThreshold", 1)
    failures_allowed = probe.get("failureThreshold", 3)
    successes = failures = 0
    await asyncio.sleep(probe.get("initialDelaySeconds", 0))
    while True:
        if "running" in c.state:
            ok = await probe_once(probe, c.spec, env=env, pod_ip=pod_ip, cwd=cwd, timeout=timeout)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            ready = c.ready
            if ok and successes >= success_needed:
                ready = True
            elif not ok and failures >= failures_allowed:
                ready = False
            if ready != c.ready:
                c.ready = ready
                changed()
        await asyncio.sleep(period)
