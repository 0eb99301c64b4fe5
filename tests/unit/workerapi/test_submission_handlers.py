"""The submission API's handlers against a fake API server: every answer, good and bad.

(``tests/integration/test_submission_api.py`` runs the same API against the real
control plane, its TokenReviews and RBAC.)
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from shiftboss.kube.client import ApiError
from shiftboss.kube.reviews import AccessReviewer
from shiftboss.workerapi.problems import errors_middleware
from shiftboss.workerapi.submission_models import SUBMITTED_BY
from shiftboss.workerapi.submissions import SubmissionApi
from shiftboss.workers.auth import AuthError, WorkerIdentity
from worker_runtime.protocol import MAX_REQUEST_BYTES

CI = {"Authorization": "Bearer ci"}  # may create, get and patch jobs in team-a
NOBODY = {"Authorization": "Bearer nobody"}  # may do nothing
JOB = {"pool": "demo", "skill": "add", "params": {"a": 1}}


class FakeAuth:
    async def identify(self, authorization: str | None, *, peer: str | None = None):
        account = (authorization or "").removeprefix("Bearer ")
        if account not in ("ci", "nobody"):
            raise AuthError("token rejected")
        return WorkerIdentity("team-a", account)


class FakeKube:
    """SubjectAccessReviews (RBAC: ``grants``) and Jobs of one API server."""

    def __init__(self) -> None:
        self.grants = {
            ("system:serviceaccount:team-a:ci", verb) for verb in ("create", "get", "patch")
        }
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions = itertools.count(1)
        self.failures: list[ApiError] = []
        self.patches = 0
        self.reads = 0
        #: Patches refused with a Conflict (another writer got there first).
        self.conflicts = 0

    def _fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    async def create(self, path: str, body: Any) -> dict[str, Any]:
        if path.endswith("/subjectaccessreviews"):
            spec = body["spec"]
            allowed = (spec["user"], spec["resourceAttributes"]["verb"]) in self.grants
            return {"status": {"allowed": allowed}}
        self._fail()
        namespace = path.split("/")[5]
        metadata = body["metadata"]
        name = metadata.get("name") or metadata["generateName"] + "x7k2p"
        if (namespace, name) in self.jobs:
            raise ApiError(409, "AlreadyExists", f'jobs.shiftboss.io "{name}" already exists')
        job = {
            **body,
            "metadata": {
                **metadata,
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "resourceVersion": str(next(self.versions)),
            },
        }
        self.jobs[namespace, name] = job
        return job

    async def get(self, path: str) -> dict[str, Any]:
        self.reads += 1
        self._fail()
        parts = path.split("/")
        job = self.jobs.get((parts[5], parts[7]))
        if job is None:
            raise ApiError(404, "NotFound", f'jobs.shiftboss.io "{parts[7]}" not found')
        return job

    async def patch(self, path: str, body: Any, content_type: str = "") -> dict[str, Any]:
        self.patches += 1
        job = await self.get(path)
        if self.conflicts:
            self.conflicts -= 1
            raise ApiError(409, "Conflict", "the object has been modified")
        if body["metadata"]["resourceVersion"] != job["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "the object has been modified")
        job["spec"] = {**job["spec"], **body["spec"]}
        job["metadata"]["resourceVersion"] = str(next(self.versions))
        return job


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
async def client(kube: FakeKube) -> AsyncIterator[TestClient]:
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[errors_middleware])
    api = SubmissionApi(
        auth=FakeAuth(), reviewer=AccessReviewer(kube), kube=kube, namespaces=["team-a"]
    )
    api.add_routes(app.router)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def answer(response) -> tuple[int, dict[str, Any]]:
    return response.status, await response.json()


async def error(response) -> tuple[int, str, str]:
    status, body = await answer(response)
    return status, body["error"]["code"], body["error"]["message"]


async def test_create_get_cancel(client: TestClient, kube: FakeKube):
    status, created = await answer(await client.post("/v1/jobs/team-a", json=JOB, headers=CI))
    assert status == 201
    assert created["name"] == "add-x7k2p" and created["uid"] == "uid-add-x7k2p"
    assert created["submittedBy"] == "system:serviceaccount:team-a:ci"
    assert kube.jobs["team-a", "add-x7k2p"]["metadata"]["annotations"] == {
        SUBMITTED_BY: "system:serviceaccount:team-a:ci"
    }
    status, got = await answer(await client.get("/v1/jobs/team-a/add-x7k2p", headers=CI))
    assert (status, got["spec"]["params"]) == (200, {"a": 1})
    status, cancelled = await answer(
        await client.post("/v1/jobs/team-a/add-x7k2p/cancel", headers=CI)
    )
    assert (status, cancelled["spec"]["cancel"]) == (200, True)
    # Again: already asked, nothing written.
    assert (await client.post("/v1/jobs/team-a/add-x7k2p/cancel", headers=CI)).status == 200
    assert kube.patches == 1


async def test_cancel_of_a_finished_job_writes_nothing(client: TestClient, kube: FakeKube):
    await client.post("/v1/jobs/team-a", json={**JOB, "name": "done"}, headers=CI)
    kube.jobs["team-a", "done"]["status"] = {"phase": "Succeeded"}
    status, code, message = await error(
        await client.post("/v1/jobs/team-a/done/cancel", headers=CI)
    )
    assert (status, code) == (409, "job_finished")
    assert "already ended Succeeded" in message
    assert kube.patches == 0


async def test_cancel_decides_again_when_the_job_changed(client: TestClient, kube: FakeKube):
    await client.post("/v1/jobs/team-a", json={**JOB, "name": "busy"}, headers=CI)
    kube.conflicts = 1
    assert (await client.post("/v1/jobs/team-a/busy/cancel", headers=CI)).status == 200
    assert kube.patches == 2
    assert kube.jobs["team-a", "busy"]["spec"]["cancel"] is True
    kube.conflicts = 100
    assert (await client.post("/v1/jobs/team-a/busy/cancel", headers=CI)).status == 200
    assert kube.patches == 2  # already cancelled: no write, whatever the conflicts


async def test_cancel_gives_up_on_a_job_that_keeps_changing(client: TestClient, kube: FakeKube):
    await client.post("/v1/jobs/team-a", json={**JOB, "name": "busy"}, headers=CI)
    kube.conflicts = 100
    status, code, _ = await error(await client.post("/v1/jobs/team-a/busy/cancel", headers=CI))
    assert (status, code, kube.patches) == (503, "job_busy", 5)


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [({}, 401, "unauthenticated"), ({"Authorization": "Bearer junk"}, 401, "unauthenticated")],
)
async def test_unauthenticated(client: TestClient, headers, status, code):
    for response in (
        await client.post("/v1/jobs/team-a", json=JOB, headers=headers),
        await client.get("/v1/jobs/team-a/x", headers=headers),
        await client.post("/v1/jobs/team-a/x/cancel", headers=headers),
    ):
        assert (await error(response))[:2] == (status, code)


async def test_refusals_name_the_verb_resource_and_namespace(client: TestClient, kube: FakeKube):
    await client.post("/v1/jobs/team-a", json={**JOB, "name": "mine"}, headers=CI)
    for response, verb in [
        (await client.post("/v1/jobs/team-a", json=JOB, headers=NOBODY), "create"),
        (await client.get("/v1/jobs/team-a/mine", headers=NOBODY), "get"),
        (await client.post("/v1/jobs/team-a/mine/cancel", headers=NOBODY), "patch"),
    ]:
        status, code, message = await error(response)
        assert (status, code) == (403, "forbidden")
        assert f"system:serviceaccount:team-a:nobody may not {verb} jobs.shiftboss.io" in message
        assert "in namespace 'team-a'" in message and f"grants '{verb}'" in message
    assert len(kube.jobs) == 1 and kube.patches == 0


async def test_a_namespace_not_served(client: TestClient):
    status, code, message = await error(
        await client.post("/v1/jobs/elsewhere", json=JOB, headers=CI)
    )
    assert (status, code) == (404, "namespace_not_served")
    assert "does not serve namespace 'elsewhere'" in message


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/jobs/Team_A/x", "namespace_not_served"),
        ("/v1/jobs/team-a/-x", "unknown_job"),
        ("/v1/jobs/team-a/a%2E%2E", "unknown_job"),
        ("/v1/jobs/team-a/" + "a" * 254, "unknown_job"),
    ],
)
async def test_only_names_reach_the_api_server(client: TestClient, kube: FakeKube, path, code):
    response = await client.get(path, headers=CI)
    assert (await error(response))[:2] == (404, code)
    assert kube.reads == 0


async def test_unknown_job(client: TestClient):
    for response in (
        await client.get("/v1/jobs/team-a/nope", headers=CI),
        await client.post("/v1/jobs/team-a/nope/cancel", headers=CI),
    ):
        assert await error(response) == (404, "unknown_job", "no job team-a/nope")


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        (b"{not json", 400, "malformed_json", "not valid JSON"),
        (b'{"pool": "demo", "skill": "add", "priority": NaN}', 400, "malformed_json", "NaN"),
        (json.dumps({**JOB, "colour": "red"}).encode(), 422, "invalid_request", "colour"),
        (json.dumps({**JOB, "priority": "high"}).encode(), 422, "invalid_request", "priority"),
        (json.dumps({"skill": "add"}).encode(), 422, "invalid_request", "pool"),
        (
            json.dumps({**JOB, "retry": {"backof": {}}}).encode(),
            422,
            "invalid_request",
            "unknown field 'retry.backof'",
        ),
        (b"x" * (MAX_REQUEST_BYTES + 1), 413, "body_too_large", "bytes"),
    ],
)
async def test_bad_bodies(client: TestClient, kube: FakeKube, body, status, code, words):
    headers = {**CI, "Content-Type": "application/json"}
    got = await error(await client.post("/v1/jobs/team-a", data=body, headers=headers))
    assert got[:2] == (status, code)
    assert words in got[2]
    assert kube.jobs == {}


async def test_what_the_api_server_refuses(client: TestClient, kube: FakeKube):
    await client.post("/v1/jobs/team-a", json={**JOB, "name": "taken"}, headers=CI)
    status, code, _ = await error(
        await client.post("/v1/jobs/team-a", json={**JOB, "name": "taken"}, headers=CI)
    )
    assert (status, code) == (409, "job_exists")
    kube.failures = [ApiError(422, "Invalid", "spec.params: Too long")]
    status, code, message = await error(await client.post("/v1/jobs/team-a", json=JOB, headers=CI))
    assert (status, code) == (422, "invalid_job") and "spec.params: Too long" in message
    kube.failures = [ApiError(503, "ServiceUnavailable", "etcd")]
    status, code, _ = await error(await client.get("/v1/jobs/team-a/taken", headers=CI))
    assert (status, code) == (503, "kubernetes_unavailable")
