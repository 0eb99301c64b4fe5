"""Pure helpers: a container's environment and command line, resolved as a kubelet would."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class EnvError(Exception):
    """A variable cannot be resolved (missing secret key, unknown field path...)."""


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay as written, ``$$`` escapes."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR.sub(sub, value)


def field_ref(pod: dict[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    """The value of a downward-API ``fieldRef.fieldPath``."""
    meta, spec = pod["metadata"], pod["spec"]
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return simple[path] or ""
    match = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if match:
        return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
    raise EnvError(f"unsupported fieldRef.fieldPath {path!r}")


Lookup = Callable[[str, str, str], str | None]  # (kind "secret"/"configmap", name, key) -> value


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    base: Mapping[str, str],
    lookup: Lookup,
    pod_ip: str,
    host_ip: str,
) -> dict[str, str]:
    """``base`` (the node's own variables), then envFrom, then env in order, with expansion."""
    env = dict(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = source.get(key)
            if ref:
                data = lookup(kind, ref["name"], "*")
                if data is None and not ref.get("optional"):
                    raise EnvError(f"{kind} {ref['name']!r} for envFrom not found")
                for name, value in (data or {}).items():  # type: ignore[union-attr]
                    env[prefix + name] = value
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(var.get("value", ""), env)
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            env[name] = field_ref(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "secretKeyRef" in source or "configMapKeyRef" in source:
            kind, ref = (
                ("secret", source["secretKeyRef"])
                if "secretKeyRef" in source
                else ("configmap", source["configMapKeyRef"])
            )
            value = lookup(kind, ref["name"], ref["key"])
            if value is None:
                if ref.get("optional"):
                    continue
                raise EnvError(
                    f"env {name}: key {ref['key']!r} of {kind} {ref['name']!r} not found"
                )
            env[name] = value
        elif "resourceFieldRef" in source:
            env[name] = _resource_value(container, source["resourceFieldRef"])
        else:
            raise EnvError(f"env {name}: unsupported valueFrom {sorted(source)}")
    return env


def _resource_value(container: dict[str, Any], ref: dict[str, Any]) -> str:
    kind, _, resource = ref["resource"].partition(".")
    value = (container.get("resources") or {}).get(kind, {}).get(resource)
    return str(value) if value is not None else "0"


def command_line(container: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """The argv of a container; images are not run, so ``command`` is required."""
    command = container.get("command") or []
    if not command:
        raise EnvError(
            f"container {container['name']!r} has no command: the process node runs commands, "
            "not images, so set container.command"
        )
    return [expand(part, env) for part in [*command, *(container.get("args") or [])]]


def translate_paths(value: str, mounts: list[tuple[str, str]]) -> str:
    """Rewrite a path under a volume's ``mountPath`` to where the node keeps that volume.

    ``mounts`` is ``[(mountPath, hostPath)]``; the longest mount path wins.
    """
    for mount_path, host_path in sorted(mounts, key=lambda m: -len(m[0])):
        mount_path = mount_path.rstrip("/") or "/"
        if value == mount_path or value.startswith(mount_path + "/"):
            return host_path + value[len(mount_path) :]
    return value
