"""The real JobStore's requests and error mapping, against ``httpx.MockTransport`` behind a
real ``KubeClient``; and the in-memory FakeJobStore failing the same way.

``ApiServer`` below answers like the API server for one resource: a status merge patch
is refused with 409 unless it carries the stored resourceVersion, and a delete with 409
unless its uid precondition matches.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fake_store import (
    NAMESPACE,
    REASONS,
    FakeJobStore,
    Operation,
    job_object,
    read_timeout,
)

from shiftboss.api.job import JobStatus
from shiftboss.jobs.store import JobGone, JobStore, StaleJob
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.kube.client import RETRIES_ON_429, ApiError, KubeClient
from shiftboss.kube.config import KubeConfig

SERVER = "https://kube.test"
JOB_PATH = f"/apis/shiftboss.io/v1alpha1/namespaces/{NAMESPACE}/jobs"


def status_body(code: int, message: str = "injected") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": REASONS.get(code, ""),
        "message": message,
        "code": code,
    }


@dataclass
class ApiServer:
    """The Jobs of one namespace, served over ``httpx.MockTransport``."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    #: Answers (a status code) or transport errors (an exception) for the next requests.
    faults: list[int | Exception] = field(default_factory=list)
    version: int = 100

    def refuse(self, status: int) -> None:
        """Answer the next request with ``status``; a 429 as often as the client resends
        it (it retries those itself), so that the store sees the 429 it gave up on."""
        self.faults += [status] * (RETRIES_ON_429 + 1 if status == 429 else 1)

    def add(self, obj: dict[str, Any]) -> TrackedJob:
        self.version += 1
        obj = json.loads(json.dumps(obj))
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.jobs[obj["metadata"]["name"]] = obj
        return TrackedJob.from_object(obj)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.faults:
            fault = self.faults.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return httpx.Response(fault, json=status_body(fault))
        path = request.url.path
        if path == JOB_PATH and request.method == "GET":
            return httpx.Response(200, json={"kind": "JobList", "items": list(self.jobs.values())})
        name, _, subresource = path.removeprefix(JOB_PATH + "/").partition("/")
        obj = self.jobs.get(name)
        if obj is None:
            return httpx.Response(404, json=status_body(404, f'jobs "{name}" not found'))
        body = json.loads(request.content) if request.content else {}
        if request.method == "GET":
            return httpx.Response(200, json=obj)
        if request.method == "PATCH" and subresource == "status":
            if body["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                return httpx.Response(409, json=status_body(409, "the object has been modified"))
            obj["status"] = body["status"]
            self.version += 1
            obj["metadata"]["resourceVersion"] = str(self.version)
            return httpx.Response(200, json=obj)
        if request.method == "DELETE":
            if body["preconditions"]["uid"] != obj["metadata"]["uid"]:
                return httpx.Response(409, json=status_body(409, "Precondition failed: UID"))
            del self.jobs[name]
            return httpx.Response(200, json=status_body(200, "deleted"))
        return httpx.Response(405, json=status_body(405))


@pytest.fixture(autouse=True)
def no_wait_after_429(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shiftboss.kube.client.retry_after", lambda header: 0.0)


@pytest.fixture
def api() -> ApiServer:
    return ApiServer()


@pytest.fixture
async def store(api: ApiServer, tmp_path: Path) -> AsyncIterator[JobStore]:
    # The smallest kubeconfig any loader accepts: a server and a token, no certificates.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": SERVER, "insecure-skip-tls-verify": True}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    config = KubeConfig.from_file(kubeconfig)
    async with KubeClient(config, transport=httpx.MockTransport(api.handle)) as client:
        yield JobStore(client)


def running() -> JobStatus:
    return JobStatus.model_validate({"phase": "Running", "attempt": 1, "worker": "w1"})


# -- what the real store sends --------------------------------------------------------------


async def test_a_status_write_is_a_merge_patch_on_the_status_carrying_the_resource_version(
    api: ApiServer, store: JobStore
) -> None:
    job = api.add(job_object("a"))

    written = await store.write_status(job, running())

    request = api.requests[-1]
    assert (request.method, request.url.path) == ("PATCH", f"{JOB_PATH}/a/status")
    assert request.headers["Content-Type"] == "application/merge-patch+json"
    body = json.loads(request.content)
    assert body["metadata"] == {"resourceVersion": job.resource_version}
    assert body["status"]["phase"] == "Running"
    assert written.resource_version != job.resource_version
    assert written.status is not None and written.status.worker == "w1"
    assert store.status_writes == 1


async def test_a_delete_carries_the_uid_precondition_and_deletes_in_the_background(
    api: ApiServer, store: JobStore
) -> None:
    job = api.add(job_object("a"))

    await store.delete(job)

    request = api.requests[-1]
    assert (request.method, request.url.path) == ("DELETE", f"{JOB_PATH}/a")
    body = json.loads(request.content)
    assert body["preconditions"] == {"uid": job.uid}
    assert body["propagationPolicy"] == "Background"
    assert api.jobs == {}


async def test_read_returns_a_tracked_job(api: ApiServer, store: JobStore) -> None:
    api.add(job_object("a"))

    read = await store.read(NAMESPACE, "a")

    assert (read.name, read.uid) == ("a", "uid-a")


# -- how it maps the API server's answers -----------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (409, StaleJob),
        (404, JobGone),
        *((status, ApiError) for status in (403, 422, 429, 500, 503, 504)),
    ],
)
async def test_a_status_write_maps_409_to_stale_404_to_gone_and_raises_the_rest(
    api: ApiServer, store: JobStore, status: int, expected: type[Exception]
) -> None:
    job = api.add(job_object("a"))
    api.refuse(status)

    with pytest.raises(expected) as raised:
        await store.write_status(job, running())

    if expected is ApiError:
        assert isinstance(raised.value, ApiError)
        assert (raised.value.status, raised.value.reason) == (status, REASONS[status])
    assert store.status_writes == 0
    assert "status" not in api.jobs["a"]


@pytest.mark.parametrize(("status", "expected"), [(404, JobGone), (409, ApiError), (503, ApiError)])
async def test_a_read_maps_404_to_gone_and_raises_the_rest(
    api: ApiServer, store: JobStore, status: int, expected: type[Exception]
) -> None:
    api.refuse(status)

    with pytest.raises(expected):
        await store.read(NAMESPACE, "a")


@pytest.mark.parametrize("status", [404, 409])
async def test_a_delete_answered_404_or_409_is_done(
    api: ApiServer, store: JobStore, status: int
) -> None:
    job = api.add(job_object("a"))
    api.refuse(status)

    await store.delete(job)  # gone already, or someone else's Job now: nothing to do


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_delete_answered_otherwise_raises(
    api: ApiServer, store: JobStore, status: int
) -> None:
    job = api.add(job_object("a"))
    api.refuse(status)

    with pytest.raises(ApiError) as raised:
        await store.delete(job)

    assert raised.value.status == status
    assert "a" in api.jobs


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_transport_errors_propagate_unchanged_from_every_call(
    api: ApiServer, store: JobStore, error: Exception
) -> None:
    job = api.add(job_object("a"))
    calls: list[Callable[[], Any]] = [
        lambda: store.write_status(job, running()),
        lambda: store.read(NAMESPACE, "a"),
        lambda: store.delete(job),
    ]
    for call in calls:
        api.faults.append(error)
        with pytest.raises(type(error)):
            await call()
    assert store.status_writes == 0


async def test_a_recreated_job_is_neither_written_nor_deleted_through_the_old_uid(
    api: ApiServer, store: JobStore
) -> None:
    old = api.add(job_object("a"))
    new = api.add(job_object("a", uid="uid-a-2"))  # deleted and created again

    with pytest.raises(StaleJob):
        await store.write_status(old, running())
    reread = await store.read(NAMESPACE, "a")
    await store.delete(old)  # 409: the uid precondition fails, and that is not an error

    assert reread.uid == new.uid != old.uid  # the caller must see it is another Job
    assert api.jobs["a"]["metadata"]["uid"] == "uid-a-2"
    assert "status" not in api.jobs["a"]


# -- the fake fails the way the real store does ---------------------------------------------

CASES: list[tuple[Operation, int]] = [
    (op, status)
    for op in ("write", "read", "delete")
    for status in (404, 409, 422, 429, 500, 503)
    if not (op == "delete" and status in (404, 409))  # the real delete raises nothing for these
]


async def call(store: JobStore | FakeJobStore, op: Operation, job: TrackedJob) -> Any:
    if op == "write":
        return await store.write_status(job, running())
    if op == "read":
        return await store.read(job.namespace, job.name)
    return await store.delete(job)


def outcome(error: BaseException) -> tuple[type[BaseException], int | None, str | None]:
    if isinstance(error, ApiError):
        return type(error), error.status, error.reason
    return type(error), None, None


@pytest.mark.parametrize(("op", "status"), CASES, ids=[f"{o}-{s}" for o, s in CASES])
async def test_fail_next_raises_what_the_real_store_raises_for_that_answer(
    api: ApiServer, store: JobStore, op: Operation, status: int
) -> None:
    fake = FakeJobStore()
    fake_job = TrackedJob.from_object(fake.create("a"))
    real_job = api.add(job_object("a"))
    api.refuse(status)
    fake.fail_next(op, status=status)

    with pytest.raises(Exception) as real:
        await call(store, op, real_job)
    with pytest.raises(Exception) as faked:
        await call(fake, op, fake_job)

    assert outcome(faked.value) == outcome(real.value)
    assert fake.status_writes == 0 and fake.deleted == []  # a failed call changes nothing


@pytest.mark.parametrize("op", ["write", "read", "delete"])
async def test_a_fake_timeout_is_the_real_clients_timeout(
    api: ApiServer, store: JobStore, op: Operation
) -> None:
    fake = FakeJobStore()
    fake_job = TrackedJob.from_object(fake.create("a"))
    api.faults.append(read_timeout())
    fake.time_out_next(op)

    with pytest.raises(httpx.TimeoutException) as real:
        await call(store, op, api.add(job_object("a")))
    with pytest.raises(httpx.TimeoutException) as faked:
        await call(fake, op, fake_job)

    assert type(faked.value) is type(real.value)
    assert fake.get("a")["metadata"]["resourceVersion"] == fake_job.resource_version


async def test_a_write_whose_reply_is_lost_has_landed_and_its_retry_is_stale() -> None:
    fake = FakeJobStore()
    job = TrackedJob.from_object(fake.create("a"))
    fake.lose_reply_next("write")

    with pytest.raises(httpx.ReadTimeout):
        await fake.write_status(job, running())

    assert fake.phase("a") == "Running"
    assert fake.status_writes == 1
    with pytest.raises(StaleJob):  # the retry carries the version the write replaced
        await fake.write_status(job, running())
    assert fake.unfired_faults() == []


async def test_a_delete_whose_reply_is_lost_has_deleted() -> None:
    fake = FakeJobStore()
    job = TrackedJob.from_object(fake.create("a"))
    fake.lose_reply_next("delete", error=httpx.RemoteProtocolError("disconnected"))

    with pytest.raises(httpx.RemoteProtocolError):
        await fake.delete(job)

    assert fake.deleted == ["a"]
    assert fake.objects == {}


async def test_a_timeout_takes_the_time_it_is_given() -> None:
    fake = FakeJobStore()
    job = TrackedJob.from_object(fake.create("a"))
    fake.time_out_next("write", after=0.2)
    started = time.monotonic()

    other = asyncio.create_task(fake.read(NAMESPACE, "a"))  # not held up meanwhile
    with pytest.raises(httpx.ReadTimeout):
        await fake.write_status(job, running())

    assert time.monotonic() - started >= 0.2
    assert other.done() and other.result().name == "a"
    assert fake.status_writes == 0


async def test_faults_aimed_at_one_job_spare_the_others_and_count_down() -> None:
    fake = FakeJobStore()
    a = TrackedJob.from_object(fake.create("a"))
    b = TrackedJob.from_object(fake.create("b"))
    fake.fail_next("write", status=503, name="b", times=2)

    await fake.write_status(a, running())
    assert fake.unfired_faults() == [
        "write of b: failure (ApiError: 503 ServiceUnavailable: injected: write b) x2"
    ]
    for _ in range(2):
        with pytest.raises(ApiError, match="503"):
            await fake.write_status(b, running())
    await fake.write_status(b, running())

    assert fake.phases_written() == ["Running", "Running"]
    assert fake.unfired_faults() == []


async def test_a_recreated_job_refuses_the_old_uids_write_and_delete() -> None:
    fake = FakeJobStore()
    old = TrackedJob.from_object(fake.create("a", params={"n": 1}))

    deleted, added = fake.recreate("a")

    new = TrackedJob.from_object(added)
    assert deleted["metadata"]["uid"] == old.uid
    assert new.uid != old.uid and new.spec == old.spec and new.status is None
    with pytest.raises(StaleJob):  # as the API server answers the stale resourceVersion
        await fake.write_status(old, running())
    assert (await fake.read(NAMESPACE, "a")).uid == new.uid  # what a re-read finds
    await fake.delete(old)
    assert fake.deleted == [] and fake.phase("a") is None
    await fake.write_status(new, running())
    assert fake.phase("a") == "Running"


async def test_a_job_can_be_recreated_with_another_spec() -> None:
    fake = FakeJobStore()
    fake.create("a", priority=1)

    _, added = fake.recreate("a", priority=9)

    assert added["spec"]["priority"] == 9
    assert added["metadata"]["uid"] != "uid-a"


def test_fault_arguments_are_checked_with_a_hint() -> None:
    fake = FakeJobStore()
    with pytest.raises(ValueError, match=r"either status= .* or error="):
        fake.fail_next("write")
    with pytest.raises(ValueError, match="op='patch': give one of write, read, delete"):
        fake.fail_next("patch", status=500)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use remove\\(\\) or recreate\\(\\)"):
        fake.fail_next("delete", status=404)
    with pytest.raises(ValueError, match="times=0"):
        fake.lose_reply_next("write", times=0)
    assert fake.unfired_faults() == []


async def test_the_older_error_lists_still_come_first() -> None:
    fake = FakeJobStore()
    job = TrackedJob.from_object(fake.create("a"))
    fake.write_errors.append(RuntimeError("listed"))
    fake.fail_next("write", status=500)

    with pytest.raises(RuntimeError, match="listed"):
        await fake.write_status(job, running())
    with pytest.raises(ApiError):
        await fake.write_status(job, running())


async def test_a_slim_record_is_never_written(api: ApiServer, store: JobStore) -> None:
    job = api.add(job_object("a")).slimmed()

    with pytest.raises(ValueError, match="finished: not written"):
        await store.write_status(job, running())

    assert api.requests == []
