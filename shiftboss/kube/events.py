"""Kubernetes Events for what a person must notice (failures, retries, lost workers).

An Event is a write too, so successes get none.  Events are sent in the background:
a slow or failing Event never delays a job.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime

from shiftboss.kube.client import EVENTS, KubeClient

log = logging.getLogger("shiftboss.events")


class EventRecorder:
    def __init__(self, client: KubeClient, component: str = "shiftboss") -> None:
        self.client, self.component = client, component
        self.instance = socket.gethostname()
        self._tasks: set[asyncio.Task[None]] = set()

    def record(
        self,
        *,
        kind: str,
        namespace: str,
        name: str,
        uid: str,
        reason: str,
        message: str,
        warning: bool = False,
    ) -> None:
        task = asyncio.create_task(self._send(kind, namespace, name, uid, reason, message, warning))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self,
        kind: str,
        namespace: str,
        name: str,
        uid: str,
        reason: str,
        message: str,
        warning: bool,
    ) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "shiftboss.io/v1alpha1",
                "kind": kind,
                "name": name,
                "namespace": namespace,
                "uid": uid,
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.client.create(EVENTS.path(namespace), body)
        except Exception as exc:  # an Event is best effort by nature
            log.warning("could not record event %s for %s/%s: %s", reason, namespace, name, exc)

    async def flush(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
