"""List, then watch, one resource: the operator's view of every object of one kind.

The list is paginated (``limit``/``continue``), so that 100,000 objects never sit in
memory as one answer; the watch starts at the list's resourceVersion, asks for
bookmarks, and is resumed from the last resourceVersion it saw whenever the server ends
the stream or the connection drops.  When the server says the resourceVersion is too old
(410 Gone), the informer lists again and reports as deleted every object it had seen
that the new list no longer holds: nothing deleted while it was not watching is missed.

Per object the informer only remembers its uid (and name, for the deletion it may have
to report), so the work on the hot path is a dict update and the callback.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypedDict

import httpx

from shiftboss.kube.client import ApiError, KubeClient, Resource

log = logging.getLogger("shiftboss.informer")

KubeObject = dict[str, Any]
ObjectCallback = Callable[[KubeObject], None]
Sleep = Callable[[float], Awaitable[None]]

GONE = 410


class ObjectKey(TypedDict):
    """What a deletion found by a relist carries: the object itself is gone."""

    uid: str
    namespace: str
    name: str


@dataclass
class InformerStats:
    """Counters for tests and logs."""

    #: Pages fetched, over every list.
    pages: int = 0
    #: Objects in the last complete list.
    listed: int = 0
    #: Lists after the first (the watch's resourceVersion was too old).
    relists: int = 0
    #: Watches opened after the first one (the stream ended, or failed).
    watch_restarts: int = 0
    #: Deletions found by comparing a relist with what had been seen.
    relist_deletions: int = 0
    #: Failed requests and broken streams, each followed by a backoff.
    errors: int = 0


@dataclass
class Backoff:
    """Exponential delays with jitter (each 50-100 % of its step), bounded by ``cap``."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        self._step = self.initial
        self._rng = self.rng or random.Random()

    def next(self) -> float:
        delay = self._step * (0.5 + self._rng.random() / 2)
        self._step = min(self._step * self.factor, self.cap)
        return delay

    def reset(self) -> None:
        self._step = self.initial


class _SnapshotExpired(Exception):
    """A continue token outlived its list's snapshot: list again from the start."""


class Informer:
    """Feeds ``on_object`` with every object listed or watched and ``on_deleted`` with
    every deletion, for one namespace (or all, ``namespace=None``).

    ``start()`` runs it as a task, ``synced()`` returns once the first list has been
    handed over entirely, ``stop()`` cancels it and waits until it has stopped, so no
    callback runs after ``stop()`` returned.  Callbacks are synchronous and should be
    cheap: they run on every write of every object.
    """

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        namespace: str | None,
        *,
        on_object: ObjectCallback,
        on_deleted: ObjectCallback,
        page_size: int = 500,
        watch_timeout_seconds: int = 300,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.client = client
        self.path = resource.path(namespace)
        self.on_object = on_object
        self.on_deleted = on_deleted
        self.page_size = page_size
        self.watch_timeout_seconds = watch_timeout_seconds
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.stats = InformerStats()
        #: The last resourceVersion seen: where a watch resumes.
        self.resource_version = ""
        #: uid -> (namespace, name) of every object believed to exist.
        self._known: dict[str, tuple[str, str]] = {}
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def known(self) -> int:
        """How many objects the informer believes exist."""
        return len(self._known)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"informer {self.path}")

    async def synced(self) -> None:
        """Return once the first list was handed over; raise what ended the informer if it
        ended before that."""
        assert self._task is not None, "start() the informer first"
        synced = asyncio.create_task(self._synced.wait())
        try:
            await asyncio.wait({synced, self._task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            synced.cancel()
        if not self._synced.is_set():
            self._task.result()  # raises what ended it
            raise RuntimeError(f"informer for {self.path} ended before its first list")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        """List, then watch for ever."""
        await self._list()
        self._synced.set()
        while True:
            try:
                await self._watch()
            except ApiError as exc:
                if exc.status == GONE:
                    log.info(
                        "%s: resourceVersion %s is gone, listing again",
                        self.path,
                        self.resource_version,
                    )
                    self.stats.relists += 1
                    await self._list()
                    continue
                await self._failed("watch", exc)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                await self._failed("watch", exc)
            self.stats.watch_restarts += 1

    async def _list(self) -> None:
        """One complete list, page by page; deletions found by comparing it with what
        was seen before are reported once it is complete."""
        while True:
            seen: dict[str, tuple[str, str]] = {}
            try:
                await self._list_pages(seen)
                break
            except _SnapshotExpired:
                # A continue token outlived its snapshot (compaction): start over.
                log.info("%s: list snapshot expired, listing again from the start", self.path)
        gone = [(uid, key) for uid, key in self._known.items() if uid not in seen]
        self._known = seen
        self.stats.listed = len(seen)
        self.stats.relist_deletions += len(gone)
        for uid, (namespace, name) in gone:
            self._call(
                self.on_deleted, {"metadata": ObjectKey(uid=uid, namespace=namespace, name=name)}
            )

    async def _list_pages(self, seen: dict[str, tuple[str, str]]) -> None:
        token: str | None = None
        while True:
            params: dict[str, Any] = {"limit": self.page_size}
            if token:
                params["continue"] = token
            try:
                page = await self.client.get(self.path, **params)
            except ApiError as exc:
                if exc.status == GONE and token:
                    raise _SnapshotExpired from exc
                await self._failed("list", exc)
                continue
            except (httpx.HTTPError, ValueError) as exc:
                await self._failed("list", exc)
                continue
            self.backoff.reset()
            self.stats.pages += 1
            for obj in page.get("items") or ():
                meta = obj["metadata"]
                seen[meta["uid"]] = (meta.get("namespace", ""), meta["name"])
                self._call(self.on_object, obj)
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                self.resource_version = meta.get("resourceVersion", "")
                return

    async def _watch(self) -> None:
        """Watch from ``resource_version`` until the server ends the stream."""
        events = 0
        async for event in self.client.watch(
            self.path,
            resource_version=self.resource_version,
            timeout_seconds=self.watch_timeout_seconds,
        ):
            kind, obj = event["type"], event["object"]
            if kind == "ERROR":
                raise _status_error(obj)
            events += 1
            self.backoff.reset()
            meta = obj["metadata"]
            if kind == "DELETED":
                self._known.pop(meta["uid"], None)
                self._call(self.on_deleted, obj)
            elif kind != "BOOKMARK":
                self._known[meta["uid"]] = (meta.get("namespace", ""), meta["name"])
                self._call(self.on_object, obj)
            self.resource_version = meta["resourceVersion"]
        if not events:
            # An empty stream ended at once (a proxy's idle timeout, a server going
            # away): wait before asking again rather than spin.
            await self.sleep(self.backoff.next())

    async def _failed(self, what: str, exc: Exception) -> None:
        self.stats.errors += 1
        delay = self.backoff.next()
        log.warning("%s: %s failed (%s), again in %.1f s", self.path, what, _describe(exc), delay)
        await self.sleep(delay)

    def _call(self, callback: ObjectCallback, obj: KubeObject) -> None:
        try:
            callback(obj)
        except Exception:  # one object's bug must not stop the view of all the others
            meta = obj.get("metadata") or {}
            log.exception(
                "%s: handling %s/%s failed", self.path, meta.get("namespace"), meta.get("name")
            )


def _status_error(status: KubeObject) -> ApiError:
    """The ``Status`` of a watch's ``ERROR`` event, as the error a request would raise."""
    return ApiError(
        int(status.get("code") or 500), status.get("reason", ""), status.get("message", "")
    )


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
