"""Kubernetes Events for what a person must notice (failures, retries, lost workers).

An Event is a write too, so successes get none, and a failure that repeats raises the
``count`` (and ``lastTimestamp``) of its Event instead of adding one: ``kubectl
describe`` then says "(x12 over 5m)".  One Event object stands for one (object, type,
reason, message); its name is derived from them, so an operator that restarted finds
and continues the Event its predecessor wrote.  The same Event is written at most once
per ``min_interval_seconds``: repeats in between are folded into the next write.

Events are sent in the background (a slow or failing Event never delays a job), and
best effort: an Event that cannot be written is logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shiftboss.kube.client import EVENTS, ApiError, KubeClient
from shiftboss.kube.flow import Priority

__all__ = ["EventKey", "EventLog", "EventRecorder", "Series"]

log = logging.getLogger("shiftboss.events")

#: Messages are cut to this many characters (as the kubelet and client-go do).
MAX_MESSAGE_CHARS = 1024
#: How many distinct Events are remembered: the least recently seen are forgotten first
#: (a forgotten one seen again continues its Event in the API server all the same).
DEFAULT_CAPACITY = 1024
#: Writes of one Event are at least this far apart (seconds).
DEFAULT_MIN_INTERVAL_SECONDS = 5.0
_MAX_NAME = 253
_DIGEST_CHARS = 16


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class EventKey:
    """What makes two Events the same Event."""

    kind: str
    namespace: str
    name: str
    uid: str
    type: str  # "Normal" | "Warning"
    reason: str
    message: str

    @property
    def object_name(self) -> str:
        """The Event's metadata.name: ``<object>.<digest of the rest>``."""
        parts = "\0".join((self.kind, self.uid, self.type, self.reason, self.message))
        digest = hashlib.sha256(parts.encode()).hexdigest()[:_DIGEST_CHARS]
        prefix = self.name[: _MAX_NAME - _DIGEST_CHARS - 1].rstrip(".-")
        return f"{prefix}.{digest}"


@dataclass
class Series:
    """How often one Event happened, and how much of that the API server knows."""

    key: EventKey
    first: str
    last: str
    count: int = 0  # occurrences recorded by this process
    sent: int = 0  # of those, how many the API server has
    base: int = 0  # the Event's count from before this process (another operator's)
    exists: bool = False  # the Event object exists (as far as is known)

    @property
    def total(self) -> int:
        return self.base + self.count


@dataclass
class EventLog:
    """The Events seen lately, at most ``capacity``, least recently seen dropped first."""

    capacity: int = DEFAULT_CAPACITY
    _series: OrderedDict[EventKey, Series] = field(default_factory=OrderedDict)

    def seen(self, key: EventKey, now: str) -> Series:
        """Count one occurrence of ``key`` at ``now``; returns its series."""
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = Series(key, first=now, last=now)
            while len(self._series) > self.capacity:
                self._series.popitem(last=False)
        else:
            self._series.move_to_end(key)
            series.last = now
        series.count += 1
        return series

    def __len__(self) -> int:
        return len(self._series)


class EventRecorder:
    def __init__(
        self,
        client: KubeClient,
        component: str = "shiftboss",
        *,
        capacity: int = DEFAULT_CAPACITY,
        min_interval_seconds: float = DEFAULT_MIN_INTERVAL_SECONDS,
    ) -> None:
        self.client, self.component = client, component
        self.instance = socket.gethostname()
        self.min_interval_seconds = min_interval_seconds
        self.series = EventLog(capacity)
        self._senders: dict[EventKey, asyncio.Task[None]] = {}
        self._flushing = asyncio.Event()

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
        key = EventKey(
            kind,
            namespace,
            name,
            uid,
            "Warning" if warning else "Normal",
            reason,
            message[:MAX_MESSAGE_CHARS],
        )
        series = self.series.seen(key, _now())
        if key not in self._senders:
            self._senders[key] = asyncio.create_task(self._send(series))

    async def flush(self) -> None:
        """Write what is pending now, without waiting for the interval."""
        self._flushing.set()
        try:
            while self._senders:
                await asyncio.gather(*self._senders.values(), return_exceptions=True)
        finally:
            self._flushing.clear()

    async def _send(self, series: Series) -> None:
        """Write ``series`` until the API server has all of it, one write per interval."""
        key = series.key
        try:
            while series.sent < series.count:
                count = series.count
                await self._write(series)
                series.sent = count
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flushing.wait(), self.min_interval_seconds)
        except Exception as exc:  # an Event is best effort by nature
            log.warning(
                "could not record event %s for %s/%s: %s", key.reason, key.namespace, key.name, exc
            )
        finally:
            # No await since the last check: a repeat recorded from now on starts a sender.
            del self._senders[key]

    async def _write(self, series: Series) -> None:
        key = series.key
        path = EVENTS.path(key.namespace, key.object_name)
        if series.exists:
            try:
                await self._patch(path, series)
                return
            except ApiError as exc:
                if not exc.not_found:
                    raise
                series.base = 0  # the Event expired (the API server's TTL): start it anew
        try:
            await self.client.create(
                EVENTS.path(key.namespace), self._body(series), priority=Priority.BACKGROUND
            )
        except ApiError as exc:
            if not exc.already_exists:
                raise
            # Written before this process knew of it (a restart, or forgotten here).
            found = await self.client.get(path, priority=Priority.BACKGROUND)
            series.base = int(found.get("count") or 1)
            await self._patch(path, series)
        series.exists = True

    async def _patch(self, path: str, series: Series) -> None:
        await self.client.patch(
            path,
            {"count": series.total, "lastTimestamp": series.last},
            priority=Priority.BACKGROUND,
        )

    def _body(self, series: Series) -> dict[str, Any]:
        key = series.key
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": key.object_name, "namespace": key.namespace},
            "involvedObject": {
                "apiVersion": "shiftboss.io/v1alpha1",
                "kind": key.kind,
                "name": key.name,
                "namespace": key.namespace,
                "uid": key.uid,
            },
            "reason": key.reason,
            "message": key.message,
            "type": key.type,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": series.first,
            "lastTimestamp": series.last,
            "count": series.total,
        }
