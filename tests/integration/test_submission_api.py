"""The submission API (``/v1/jobs``) against the real API server, its TokenReviews and
RBAC, an operator and the demo pool: a service account allowed by a Role creates, reads
and cancels Jobs with a ``kubectl create token``; one without the Role is refused naming
the verb; bad tokens, bodies, jobs and namespaces get their 4xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import apply, get, pool_manifest
from fakeworker import create_token, wait_phase
from security_helpers import create_account

SUBMITTER, OUTSIDER = "submitter", "outsider"
#: The first job waits for the pool's worker to start.
FIRST_RUN_TIMEOUT = 120


def allow(cluster, namespace: str, account: str, verbs: str) -> None:
    """A Role granting ``verbs`` on jobs.shiftboss.io, bound to ``account``, made with
    the commands docs/submission-api.md gives."""
    kubectl = ("-n", namespace, "create")
    cluster.kubectl(
        *kubectl, "role", f"{account}-jobs", f"--verb={verbs}", "--resource=jobs.shiftboss.io"
    )
    cluster.kubectl(
        *kubectl,
        "rolebinding",
        f"{account}-jobs",
        f"--role={account}-jobs",
        f"--serviceaccount={namespace}:{account}",
    )


@pytest.fixture
def http(operator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=operator.url, timeout=30, trust_env=False) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    return str(error["message"])


def test_a_service_account_allowed_by_rbac_submits_reads_and_cancels(cluster, namespace, http):
    create_account(cluster, namespace, SUBMITTER)
    allow(cluster, namespace, SUBMITTER, "create,get,patch")
    apply(cluster, namespace, pool_manifest("demo", concurrency=2))
    token = bearer(create_token(cluster, namespace, SUBMITTER))
    user = f"system:serviceaccount:{namespace}:{SUBMITTER}"

    created = http.post(
        f"/v1/jobs/{namespace}",
        json={"pool": "demo", "skill": "add", "params": {"a": 2, "b": 3}, "priority": 7},
        headers=token,
    )
    assert created.status_code == 201, created.text
    job = created.json()
    name = job["name"]
    assert name.startswith("add-") and job["namespace"] == namespace and job["uid"]
    assert job["submittedBy"] == user and job["spec"]["priority"] == 7
    stored = get(cluster, namespace, "jobs.shiftboss.io", name)
    assert stored["metadata"]["annotations"]["shiftboss.io/submitted-by"] == user

    wait_phase(cluster, namespace, name, ("Succeeded",), timeout=FIRST_RUN_TIMEOUT)
    read = http.get(f"/v1/jobs/{namespace}/{name}", headers=token)
    assert read.status_code == 200, read.text
    status = read.json()["status"]
    assert (status["phase"], status["result"]) == ("Succeeded", 5)
    assert {c["type"] for c in status["conditions"]} >= {"Ready", "Complete"}

    sleeper = http.post(
        f"/v1/jobs/{namespace}",
        json={"pool": "demo", "skill": "sleep", "params": {"seconds": 300}, "name": "sleeper"},
        headers=token,
    )
    assert sleeper.status_code == 201, sleeper.text
    wait_phase(cluster, namespace, "sleeper", ("Running",), timeout=60)
    cancelled = http.post(f"/v1/jobs/{namespace}/sleeper/cancel", headers=token)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["spec"]["cancel"] is True
    wait_phase(cluster, namespace, "sleeper", ("Cancelled",), timeout=60)
    again = http.post(f"/v1/jobs/{namespace}/sleeper/cancel", headers=token)
    assert "already ended Cancelled" in refused(again, 409, "job_finished")

    taken = http.post(
        f"/v1/jobs/{namespace}",
        json={"pool": "demo", "skill": "add", "name": "sleeper"},
        headers=token,
    )
    refused(taken, 409, "job_exists")
    missing = http.get(f"/v1/jobs/{namespace}/nope", headers=token)
    assert refused(missing, 404, "unknown_job") == f"no job {namespace}/nope"


def test_refusals(cluster, namespace, http):
    create_account(cluster, namespace, SUBMITTER)
    create_account(cluster, namespace, OUTSIDER)
    allow(cluster, namespace, SUBMITTER, "create,get,patch")
    allow(cluster, namespace, OUTSIDER, "get")
    token = bearer(create_token(cluster, namespace, SUBMITTER))
    outsider = bearer(create_token(cluster, namespace, OUTSIDER))
    body = {"pool": "demo", "skill": "add", "params": {"a": 1, "b": 1}}
    jobs = f"/v1/jobs/{namespace}"

    # RBAC decides, per verb: the outsider may get (a missing job: 404), not create or cancel.
    message = refused(http.post(jobs, json=body, headers=outsider), 403, "forbidden")
    assert (
        f"system:serviceaccount:{namespace}:{OUTSIDER} may not create jobs.shiftboss.io" in message
    )
    assert f"in namespace {namespace!r}" in message
    refused(http.get(f"{jobs}/nope", headers=outsider), 404, "unknown_job")
    message = refused(http.post(f"{jobs}/nope/cancel", headers=outsider), 403, "forbidden")
    assert "may not patch jobs.shiftboss.io 'nope'" in message

    refused(http.post(jobs, json=body), 401, "unauthenticated")
    refused(http.post(jobs, json=body, headers=bearer("garbage")), 401, "unauthenticated")
    # A token for the API server, not for Shiftboss, is refused with the fix in words.
    api_token = bearer(
        cluster.kubectl("-n", namespace, "create", "token", SUBMITTER).stdout.strip()
    )
    message = refused(http.post(jobs, json=body, headers=api_token), 401, "unauthenticated")
    assert "--audience shiftboss" in message

    malformed = http.post(
        jobs, content=b"{pool: demo", headers={**token, "Content-Type": "application/json"}
    )
    refused(malformed, 400, "malformed_json")
    bad = http.post(jobs, json={**body, "retry": {"maxAttemps": 2}}, headers=token)
    assert "unknown field 'retry.maxAttemps'" in refused(bad, 422, "invalid_request")
    assert bad.json()["error"]["field"] == "retry"
    message = refused(
        http.post("/v1/jobs/not-served", json=body, headers=token), 404, "namespace_not_served"
    )
    assert "does not serve namespace 'not-served'" in message
    # Nothing of the above created anything.
    assert get(cluster, namespace, "jobs.shiftboss.io")["items"] == []
