"""A fake of the pods API for ``shiftboss.ownpod.LeaderLabel``: one pod's labels, patched
with JSON merge patches, each taking ``latency`` (or failing, or hanging) as told."""

from __future__ import annotations

import asyncio
from typing import Any

from lease_fakes import forever, now

from shiftboss.kube.client import ApiError
from shiftboss.ownpod import LEADER_LABEL


class FakePods:
    def __init__(self, path: str, *, on_change: Any = None, latency: float = 0) -> None:
        self.path, self.latency = path, latency
        self.labels: dict[str, str] = {}
        #: (virtual time, the leader label after the patch) for every patch that landed.
        self.history: list[tuple[float, str | None]] = []
        #: Raised by the next patches, one each, before they land.
        self.errors: list[Exception] = []
        self.hang = False
        self.on_change = on_change

    async def patch(self, path: str, body: Any) -> dict[str, Any]:
        await asyncio.sleep(self.latency)
        if self.hang:
            await forever()
        if self.errors:
            raise self.errors.pop(0)
        if path != self.path:
            raise ApiError(404, "NotFound", f"{path} not found")
        for key, value in body["metadata"]["labels"].items():
            if value is None:
                self.labels.pop(key, None)
            else:
                self.labels[key] = value
        self.history.append((now(), self.labels.get(LEADER_LABEL)))
        if self.on_change is not None:
            self.on_change(self.labels.get(LEADER_LABEL))
        return {"metadata": {"labels": dict(self.labels)}}
