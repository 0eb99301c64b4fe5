"""A pod's volumes, materialised as directories under the pod's own folder.

Supported: emptyDir, secret, configMap, downwardAPI, hostPath, and projected (with
serviceAccountToken sources requested through the TokenRequest API, bound to the pod).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftboss.kube.client import CONFIGMAPS, SECRETS, SERVICEACCOUNTS, ApiError, KubeClient
from shiftboss.testing.node.env import EnvError, field_ref


@dataclass
class TokenFile:
    """A projected token that must be renewed before it expires (at 80% of its life)."""

    path: Path
    audience: str | None
    expiration_seconds: int
    renew_at: float = 0.0


@dataclass
class Volumes:
    mounts: dict[str, Path] = field(default_factory=dict)  # volume name -> host dir
    tokens: list[TokenFile] = field(default_factory=list)


class VolumeBuilder:
    def __init__(
        self, client: KubeClient, pod: dict[str, Any], root: Path, pod_ip: str, host_ip: str
    ):
        self.client, self.pod, self.root = client, pod, root
        self.pod_ip, self.host_ip = pod_ip, host_ip
        self.namespace = pod["metadata"]["namespace"]

    async def build(self) -> Volumes:
        result = Volumes()
        for volume in self.pod["spec"].get("volumes") or []:
            name = volume["name"]
            target = self.root / name
            if "hostPath" in volume:
                result.mounts[name] = Path(volume["hostPath"]["path"])
                continue
            target.mkdir(parents=True, exist_ok=True)
            result.mounts[name] = target
            if "emptyDir" in volume:
                continue
            if "secret" in volume:
                src = volume["secret"]
                await self._write_object("secret", src["secretName"], src, target)
            elif "configMap" in volume:
                src = volume["configMap"]
                await self._write_object("configmap", src["name"], src, target)
            elif "downwardAPI" in volume:
                self._write_downward(volume["downwardAPI"].get("items") or [], target)
            elif "projected" in volume:
                for source in volume["projected"].get("sources") or []:
                    await self._write_projected(source, target, result)
            else:
                raise EnvError(f"volume {name!r}: unsupported volume type {sorted(volume)}")
        return result

    async def data(self, kind: str, name: str) -> dict[str, str] | None:
        """Decoded data of a secret or config map in the pod's namespace; None if absent."""
        resource = SECRETS if kind == "secret" else CONFIGMAPS
        try:
            obj = await self.client.get(resource.path(self.namespace, name))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise
        if kind == "secret":
            return {
                k: base64.b64decode(v).decode(errors="replace")
                for k, v in (obj.get("data") or {}).items()
            }
        return dict(obj.get("data") or {})

    async def _write_object(self, kind: str, name: str, src: dict[str, Any], target: Path) -> None:
        data = await self.data(kind, name)
        if data is None:
            if src.get("optional"):
                return
            raise EnvError(f"{kind} {name!r} for a volume not found")
        items = src.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if item["key"] in data:
                _write(
                    target / item["path"],
                    data[item["key"]],
                    item.get("mode", src.get("defaultMode")),
                )

    def _write_downward(self, items: list[dict[str, Any]], target: Path) -> None:
        for item in items:
            if "fieldRef" in item:
                value = field_ref(
                    self.pod, item["fieldRef"]["fieldPath"], self.pod_ip, self.host_ip
                )
                _write(target / item["path"], value, item.get("mode"))

    async def _write_projected(self, source: dict[str, Any], target: Path, result: Volumes) -> None:
        if "serviceAccountToken" in source:
            src = source["serviceAccountToken"]
            token = TokenFile(
                target / src["path"], src.get("audience"), src.get("expirationSeconds", 3600)
            )
            await self.refresh_token(token)
            result.tokens.append(token)
        elif "configMap" in source:
            await self._write_object(
                "configmap", source["configMap"]["name"], source["configMap"], target
            )
        elif "secret" in source:
            await self._write_object("secret", source["secret"]["name"], source["secret"], target)
        elif "downwardAPI" in source:
            self._write_downward(source["downwardAPI"].get("items") or [], target)

    async def refresh_token(self, token: TokenFile) -> None:
        """Request a token bound to this pod (TokenRequest API), as the kubelet does."""
        meta = self.pod["metadata"]
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        spec: dict[str, Any] = {
            "expirationSeconds": token.expiration_seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        if token.audience:
            spec["audiences"] = [token.audience]
        review = await self.client.create(
            SERVICEACCOUNTS.path(self.namespace, sa, "token"),
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        _write(token.path, review["status"]["token"], 0o600)
        token.renew_at = time.monotonic() + 0.8 * token.expiration_seconds


def _write(path: Path, content: str, mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(content)
    tmp.chmod(mode if mode is not None else 0o644)
    tmp.replace(path)  # atomic, so a reader never sees half a token
