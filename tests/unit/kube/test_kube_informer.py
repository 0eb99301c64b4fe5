"""The Informer's list+watch against ``httpx.MockTransport`` behind a real ``KubeClient``.

``FakeApi`` lists Jobs in pages (the continue token is the last name handed out) and
answers each watch request with the next scripted answer: a list of events (streamed,
then the stream ends), a status code, or a transport error; with no script left the watch
stays open, and ``idle`` is set, until the informer is stopped.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shiftboss.jobs.store import JOBS
from shiftboss.kube.client import KubeClient
from shiftboss.kube.config import KubeConfig
from shiftboss.kube.informer import Backoff, Informer, KubeObject

SERVER = "https://kube.test"
NAMESPACE = "team-a"
LIST_PATH = JOBS.path(NAMESPACE)

WatchAnswer = list[dict[str, Any]] | int | Exception


def job(name: str, namespace: str = NAMESPACE, version: int = 1) -> KubeObject:
    return {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "resourceVersion": str(version),
        },
        "spec": {"pool": "p", "skill": "s"},
    }


def event(kind: str, obj: KubeObject) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def bookmark(version: int) -> dict[str, Any]:
    return event("BOOKMARK", {"kind": "Job", "metadata": {"resourceVersion": str(version)}})


def gone_event() -> dict[str, Any]:
    status = {"kind": "Status", "status": "Failure", "reason": "Expired", "code": 410}
    return event("ERROR", {**status, "message": "too old resource version: 1 (500)"})


def status_body(code: int) -> dict[str, Any]:
    return {"kind": "Status", "status": "Failure", "reason": "Injected", "code": code}


@dataclass
class FakeApi:
    objects: dict[str, KubeObject] = field(default_factory=dict)
    version: int = 100
    watches: list[WatchAnswer] = field(default_factory=list)
    #: Answers for the next list requests: a status code or a transport error.
    list_faults: list[int | Exception] = field(default_factory=list)
    #: Answer 410 to a list page asking with this continue token (once).
    expire_token: str | None = None
    lists: list[httpx.URL] = field(default_factory=list)
    watch_requests: list[httpx.URL] = field(default_factory=list)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    #: Awaited first for every request: a test's change to the world, or a delay.
    before: Callable[[httpx.Request], Awaitable[None]] | None = None

    def add(self, *objects: KubeObject) -> None:
        for obj in objects:
            meta = obj["metadata"]
            self.objects[meta.get("uid", meta["name"])] = obj

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.before is not None:
            await self.before(request)
        if request.url.params.get("watch") == "true":
            self.watch_requests.append(request.url)
            if not self.watches:
                self.idle.set()
                await asyncio.Event().wait()  # open until the informer is stopped
            return answer(self.watches.pop(0))
        self.lists.append(request.url)
        if self.list_faults:
            return answer(self.list_faults.pop(0))
        token = request.url.params.get("continue")
        if token is not None and token == self.expire_token:
            self.expire_token = None
            return answer(410)
        namespace = request.url.path.partition("/namespaces/")[2].partition("/")[0]
        names = sorted(
            (o["metadata"]["name"], uid)
            for uid, o in self.objects.items()
            if not namespace or o["metadata"]["namespace"] == namespace
        )
        rest = [(name, uid) for name, uid in names if token is None or name > token]
        page = rest[: int(request.url.params["limit"])]
        more = len(rest) > len(page)
        meta = {"resourceVersion": str(self.version), **({"continue": page[-1][0]} if more else {})}
        items = [self.objects[uid] for _, uid in page]
        return httpx.Response(200, json={"kind": "JobList", "metadata": meta, "items": items})


def answer(script: WatchAnswer) -> httpx.Response:
    if isinstance(script, Exception):
        raise script
    if isinstance(script, int):
        return httpx.Response(script, json=status_body(script))
    return httpx.Response(200, content="".join(json.dumps(e) + "\n" for e in script))


@dataclass
class Seen:
    """What the informer handed over, in order."""

    objects: list[KubeObject] = field(default_factory=list)
    deleted: list[KubeObject] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def names(self) -> list[str]:
        return [o["metadata"]["name"] for o in self.objects]

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
async def client(api: FakeApi, tmp_path: Path) -> AsyncIterator[KubeClient]:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": SERVER}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    config = KubeConfig.from_file(kubeconfig)
    async with KubeClient(config, transport=httpx.MockTransport(api.handle)) as kube:
        yield kube


def informer_for(
    client: KubeClient, seen: Seen, namespace: str | None = NAMESPACE, page_size: int = 500
) -> Informer:
    return Informer(
        client,
        JOBS,
        namespace,
        on_object=seen.objects.append,
        on_deleted=seen.deleted.append,
        page_size=page_size,
        backoff=Backoff(rng=random.Random(7)),
        sleep=seen.sleep,
    )


async def run_until_idle(informer: Informer, api: FakeApi) -> None:
    """Start the informer and wait until it watches with nothing left in the script."""
    informer.start()
    await asyncio.wait_for(informer.synced(), timeout=5)
    await asyncio.wait_for(api.idle.wait(), timeout=5)


async def test_the_list_follows_continue_and_hands_over_every_item_before_synced(
    api: FakeApi, client: KubeClient
) -> None:
    api.add(*(job(f"j{i:04}") for i in range(1234)))
    seen = Seen()
    informer = informer_for(client, seen)
    informer.start()
    await asyncio.wait_for(informer.synced(), timeout=5)
    assert sorted(seen.names()) == [f"j{i:04}" for i in range(1234)]  # before synced returned
    await informer.stop()
    assert [url.params.get("continue") for url in api.lists] == [None, "j0499", "j0999"]
    assert all(url.params["limit"] == "500" for url in api.lists)
    assert informer.stats.pages == 3
    assert informer.stats.listed == informer.known == 1234


async def test_the_watch_starts_at_the_lists_resource_version_with_bookmarks(
    api: FakeApi, client: KubeClient
) -> None:
    api.add(job("a"))
    api.version = 4242
    informer = informer_for(client, Seen())
    await run_until_idle(informer, api)
    await informer.stop()
    (watch,) = api.watch_requests
    assert watch.path == LIST_PATH
    assert watch.params["resourceVersion"] == "4242"
    assert watch.params["allowWatchBookmarks"] == "true"


async def test_an_ended_stream_is_resumed_from_the_last_resource_version_bookmarks_included(
    api: FakeApi, client: KubeClient
) -> None:
    api.watches = [
        [event("ADDED", job("a", version=201)), bookmark(250)],
        [event("MODIFIED", job("a", version=260))],
        [event("DELETED", job("a", version=270))],
    ]
    seen = Seen()
    informer = informer_for(client, seen)
    await run_until_idle(informer, api)
    await informer.stop()
    assert [url.params["resourceVersion"] for url in api.watch_requests] == [
        "100",
        "250",
        "260",
        "270",
    ]
    assert [o["metadata"]["resourceVersion"] for o in seen.objects] == ["201", "260"]
    assert [o["metadata"]["name"] for o in seen.deleted] == ["a"]
    assert informer.stats.watch_restarts == 3
    assert informer.known == 0
    assert seen.sleeps == []  # a stream that ends after events is resumed at once


async def test_a_410_error_event_relists_and_reports_what_vanished_meanwhile_as_deleted(
    api: FakeApi, client: KubeClient
) -> None:
    api.add(job("a"), job("b"), job("c", namespace="team-b"))
    api.watches = [[event("MODIFIED", job("a", version=150)), gone_event()]]
    seen = Seen()
    informer = informer_for(client, seen, namespace=None)  # cluster-wide

    async def change_before_relist(request: httpx.Request) -> None:
        if api.watch_requests and not request.url.params.get("watch"):
            # Deleted and created while the informer was not watching.
            api.objects.pop("uid-team-b-c", None)
            api.objects.pop("uid-team-a-b", None)
            api.add(job("d"))
            api.version = 300

    api.before = change_before_relist
    await run_until_idle(informer, api)
    await informer.stop()
    assert informer.stats.relists == 1
    assert sorted((o["metadata"] for o in seen.deleted), key=lambda m: m["uid"]) == [
        {"uid": "uid-team-a-b", "namespace": "team-a", "name": "b"},
        {"uid": "uid-team-b-c", "namespace": "team-b", "name": "c"},
    ]
    assert seen.names()[-2:] == ["a", "d"]  # the relist, handed over too
    assert informer.known == 2
    assert api.lists[-1].path == JOBS.path()
    assert api.watch_requests[-1].params["resourceVersion"] == "300"


async def test_an_http_410_on_the_watch_relists_too(api: FakeApi, client: KubeClient) -> None:
    api.add(job("a"))
    api.watches = [410]
    seen = Seen()
    informer = informer_for(client, seen)
    await run_until_idle(informer, api)
    await informer.stop()
    assert informer.stats.relists == 1
    assert len(api.lists) == 2
    assert seen.names() == ["a", "a"]
    assert seen.deleted == []


async def test_an_expired_continue_token_starts_the_list_again_without_false_deletions(
    api: FakeApi, client: KubeClient
) -> None:
    api.add(*(job(f"j{i}") for i in range(5)))
    api.expire_token = "j1"
    seen = Seen()
    informer = informer_for(client, seen, page_size=2)
    await run_until_idle(informer, api)
    await informer.stop()
    assert [url.params.get("continue") for url in api.lists] == [None, "j1", None, "j1", "j3"]
    assert sorted(set(seen.names())) == [f"j{i}" for i in range(5)]
    assert seen.deleted == []
    assert informer.stats.listed == 5


async def test_errors_back_off_with_jitter_and_recover(api: FakeApi, client: KubeClient) -> None:
    api.add(job("a"))
    api.list_faults = [503, httpx.ConnectError("refused"), 500]
    api.watches = [
        500,
        httpx.ReadError("reset"),
        [event("MODIFIED", job("a", version=180))],
        500,
    ]
    seen = Seen()
    informer = informer_for(client, seen)
    await run_until_idle(informer, api)
    await informer.stop()
    assert informer.stats.errors == 6
    # Three list failures: 0.5, 1, 2 s steps (each 50-100 %); the page that worked resets
    # the steps, so do the watch's events.
    steps = [0.5, 1.0, 2.0, 0.5, 1.0, 0.5]
    assert len(seen.sleeps) == len(steps)
    for delay, step in zip(seen.sleeps, steps, strict=True):
        assert step / 2 <= delay <= step
    assert seen.names() == ["a", "a"]
    # Resumed from the last version seen each time, never relisted.
    assert [url.params["resourceVersion"] for url in api.watch_requests] == [
        "100",
        "100",
        "100",
        "180",
        "180",
    ]
    assert informer.stats.relists == 0


async def test_an_empty_stream_that_ends_at_once_is_retried_after_a_delay(
    api: FakeApi, client: KubeClient
) -> None:
    api.watches = [[], []]
    seen = Seen()
    informer = informer_for(client, seen)
    await run_until_idle(informer, api)
    await informer.stop()
    assert len(seen.sleeps) == 2
    assert 0.25 <= seen.sleeps[0] <= 0.5 and 0.5 <= seen.sleeps[1] <= 1.0


def test_backoff_is_bounded_and_resets() -> None:
    backoff = Backoff(initial=1, factor=3, cap=10, rng=random.Random(1))
    delays = [backoff.next() for _ in range(6)]
    for delay, step in zip(delays, [1, 3, 9, 10, 10, 10], strict=True):
        assert step / 2 <= delay <= step
    backoff.reset()
    assert backoff.next() <= 1


async def test_a_failing_callback_does_not_stop_the_others(
    api: FakeApi, client: KubeClient, caplog: pytest.LogCaptureFixture
) -> None:
    api.add(job("a"), job("b"))
    taken: list[str] = []

    def take(obj: KubeObject) -> None:
        if obj["metadata"]["name"] == "a":
            raise ValueError("broken object")
        taken.append(obj["metadata"]["name"])

    informer = Informer(client, JOBS, NAMESPACE, on_object=take, on_deleted=take)
    await run_until_idle(informer, api)
    await informer.stop()
    assert taken == ["b"]
    assert "handling team-a/a failed" in caplog.text


async def test_nothing_is_handed_over_after_stop(api: FakeApi, client: KubeClient) -> None:
    release = asyncio.Event()

    async def slow_watch(request: httpx.Request) -> None:
        if request.url.params.get("watch"):
            await release.wait()

    api.before = slow_watch
    api.watches = [[event("ADDED", job("late"))]]
    seen = Seen()
    informer = informer_for(client, seen)
    informer.start()
    await asyncio.wait_for(informer.synced(), timeout=5)
    await informer.stop()
    release.set()
    await asyncio.sleep(0.05)
    assert seen.objects == []
    await informer.stop()  # twice is harmless


async def test_synced_raises_what_ended_the_informer_before_its_first_list(
    api: FakeApi, client: KubeClient
) -> None:
    api.add({"kind": "Job", "metadata": {"name": "no-uid", "namespace": NAMESPACE}})
    informer = informer_for(client, Seen())
    informer.start()
    with pytest.raises(KeyError, match="uid"):
        await asyncio.wait_for(informer.synced(), timeout=5)
