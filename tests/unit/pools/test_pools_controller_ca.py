"""The PoolController gives the workers it creates the operator's CA, and rolls them
when that CA changes (the template hash covers it)."""

from __future__ import annotations

from typing import Any, cast

from shiftboss.kube.client import KubeClient
from shiftboss.kube.events import EventRecorder
from shiftboss.pools.controller import PoolController
from shiftboss.pools.pods import HASH_LABEL

CA = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
POOL = {
    "apiVersion": "shiftboss.io/v1alpha1",
    "kind": "WorkerPool",
    "metadata": {"name": "resize", "namespace": "media", "uid": "u-1", "generation": 1},
    "spec": {"image": "img:1", "app": "app:worker", "replicas": 1},
}


class RecordingClient:
    """No pods exist; the pods created are recorded; status patches succeed."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def get(self, path: str, **params: Any) -> dict[str, Any]:
        return {"items": []}

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body)
        return body

    async def patch(self, path: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
        return {**POOL, **body}


async def created_pod(ca: str | None) -> dict[str, Any]:
    recording = RecordingClient()
    client = cast(KubeClient, recording)
    controller = PoolController(
        client,
        EventRecorder(client),
        operator_url="https://operator:8000",
        worker_ca_data=ca,
        queued=lambda ns, name: 0,
        running=lambda ns, name: 0,
        busy_workers=lambda ns: set(),
    )
    controller.observe(POOL)
    await controller.reconcile(("media", "resize"))
    [pod] = recording.created
    return pod


def ca_env(pod: dict[str, Any]) -> list[dict[str, Any]]:
    [container] = pod["spec"]["containers"]
    return [e for e in container["env"] if e["name"] == "SHIFTBOSS_CA_DATA"]


async def test_workers_get_the_operators_ca_and_a_new_ca_rolls_them() -> None:
    with_ca, other_ca, without = (
        await created_pod(CA),
        await created_pod(CA.replace("MIIB", "MIIC")),
        await created_pod(None),
    )
    assert ca_env(with_ca) == [{"name": "SHIFTBOSS_CA_DATA", "value": CA}]
    assert ca_env(without) == []
    hashes = {pod["metadata"]["labels"][HASH_LABEL] for pod in (with_ca, other_ca, without)}
    assert len(hashes) == 3
