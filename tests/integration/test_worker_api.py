"""The worker API against a real operator and a real API server, driven by hand.

Workers are faked with plain HTTP calls (pools have 0 replicas, so no real worker
competes): auth, a table of malformed, oversized and hostile requests (each gets a
precise 4xx ``ErrorResponse``, never a 500, and changes nothing), the protocol step by
step (register, claim, heartbeat, progress, complete, fail), params that break the
skill's schema, results over the inline limit, lease expiry, health and metrics.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import apply, job_manifest, pool_manifest
from fakeworker import (
    Api,
    assert_ack,
    assert_error,
    create_token,
    job_state,
    job_status,
    uid_of,
    wait_phase,
)

from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until
from worker_runtime.protocol import (
    MAX_INLINE_RESULT_BYTES,
    MAX_REQUEST_BYTES,
    Assignment,
    Command,
    CommandType,
    JobRef,
    RegisterResponse,
)

LEASE_SECONDS = 5.0  # what OperatorProcess gives the test operator
OBJECT = {"type": "object"}
RESIZE = {
    "type": "object",
    "properties": {"width": {"type": "integer"}, "url": {"type": "string"}},
    "required": ["width"],
}


# -- one operator, one namespace for the whole table ----------------------------------------


@dataclass
class Env:
    cluster: Any
    namespace: str
    api: Api
    log: Path
    tokens: dict[str, str]
    #: An attempt of a Job that already Succeeded (reports on it must get 409).
    done_attempt: str
    #: A Job that waits in phase Queued (no worker offers its skill) and must never change.
    queued_name: str
    queued_uid: str
    queued_state: tuple[str, dict]
    counter: Iterator[int] = field(default_factory=itertools.count)

    def keep_alive(self) -> None:
        # The operator forgets workers that stay silent for 4 leases: a heartbeat per case
        # keeps fake-1 known (registering each time would hit the registration rate limit).
        response = self.api.post("/v1/workers/fake-1/heartbeat", {"attempt_ids": []})
        if response.status_code == 404:
            self.api.register("fake-1", {"echo": OBJECT})
        else:
            assert response.status_code == 200, response.text

    def log_size(self) -> int:
        return self.log.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")

    def state(self, name: str) -> tuple[str, dict]:
        return job_state(self.cluster, self.namespace, name)


def make_queued_job(cluster, namespace: str, name: str, skill: str) -> tuple[str, tuple]:
    """A Job that waits for a skill nobody offers, once the operator has written Queued."""
    apply(cluster, namespace, job_manifest(name, skill, {"n": 1}))
    wait_phase(cluster, namespace, name, ("Queued",))
    return uid_of(cluster, namespace, name), job_state(cluster, namespace, name)


@pytest.fixture(scope="module")
def env(cluster, tmp_path_factory) -> Iterator[Env]:
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        wait_until(
            lambda: (
                cluster.kubectl(
                    "-n", namespace, "get", "serviceaccount", "default", check=False
                ).returncode
                == 0
            ),
            timeout=30,
            what=f"the default service account in {namespace}",
        )
        for account in ("other", "gone"):
            cluster.kubectl("-n", namespace, "create", "serviceaccount", account)
        tokens = {
            "default": create_token(cluster, namespace),
            "other": create_token(cluster, namespace, "other"),
            "wrong_audience": create_token(cluster, namespace, audience="other"),
            "deleted_account": create_token(cluster, namespace, "gone"),
        }
        cluster.kubectl("-n", namespace, "delete", "serviceaccount", "gone")
        apply(
            cluster,
            namespace,
            pool_manifest("demo", replicas=0),
            pool_manifest("theirs", replicas=0, serviceAccountName="other"),
        )
        log = tmp_path_factory.mktemp("worker-api") / "operator.log"
        with OperatorProcess(cluster.env(), log, namespaces=[namespace]) as operator:
            api = Api(operator.url, tokens["default"])
            try:
                api.register_when_pool_known("fake-1", {"echo": OBJECT})
                # A finished job whose attempt is no longer current.
                apply(cluster, namespace, job_manifest("done", "echo", {}))
                [done] = api.claim("fake-1", wait=20)
                assert done.job.name == "done"
                assert_ack(api.complete(done.attempt_id, "ok"))
                wait_phase(cluster, namespace, "done", ("Succeeded",))
                queued_uid, queued_state = make_queued_job(cluster, namespace, "waiting", "idle")
                yield Env(
                    cluster=cluster,
                    namespace=namespace,
                    api=api,
                    log=log,
                    tokens=tokens,
                    done_attempt=done.attempt_id,
                    queued_name="waiting",
                    queued_uid=queued_uid,
                    queued_state=queued_state,
                )
            finally:
                api.close()
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@contextlib.contextmanager
def running_attempt(env: Env) -> Iterator[Assignment]:
    """A fresh job claimed by a fresh worker (its own skill, so no other job interferes)."""
    n = next(env.counter)
    worker, skill, name = f"runner-{n}", f"task{n}", f"running-{n}"
    env.api.register(worker, {skill: OBJECT})
    apply(env.cluster, env.namespace, job_manifest(name, skill, {"n": n}))
    assignments = env.api.claim(worker, wait=20)
    assert [a.job.name for a in assignments] == [name]
    assignment = assignments[0]
    try:
        assert env.api.heartbeat(worker, [assignment.attempt_id]) == []
        yield assignment
    finally:
        # Leave nothing running that could be retried into a later case.
        env.api.fail(assignment.attempt_id, "TestCleanup", "case over", retryable=False)


# -- the table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    #: May name {worker} (a registered worker), {running} (a current attempt), {done}
    #: (an attempt of a finished job), {queued} (the uid of the Queued job), {ghost} (a uid
    #: no job has).
    path: str
    status: int
    code: str
    field: str | None = None
    #: Sent as JSON (None: no body); ``raw`` is sent as is instead.
    body: Any = None
    raw: bytes | None = None
    content_type: str | None = "application/json"
    #: A key of ``Env.tokens`` or "none"; ``authorization`` sends that header verbatim instead.
    token: str = "default"
    authorization: str | bytes | None = None
    bug: str | None = None


REGISTER = "/v1/workers/register"
CLAIM = "/v1/workers/{worker}/claim"
HEARTBEAT = "/v1/workers/{worker}/heartbeat"
PROGRESS = "/v1/attempts/{running}/progress"
COMPLETE = "/v1/attempts/{running}/complete"
FAIL = "/v1/attempts/{running}/fail"
REG = {
    "pool": "demo",
    "worker_id": "fake-1",
    "skills": [{"name": "echo", "input_schema": OBJECT}],
    "capacity": 1,
}


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


AUTH_CASES = [
    Case(
        "no-authorization-header", "POST", REGISTER, 401, "unauthenticated", body=REG, token="none"
    ),
    Case(
        "basic-scheme",
        "POST",
        REGISTER,
        401,
        "unauthenticated",
        body=REG,
        authorization="Basic ZGVmYXVsdDpzZWNyZXQ=",
    ),
    Case(
        "garbage-token",
        "POST",
        REGISTER,
        401,
        "unauthenticated",
        body=REG,
        authorization="Bearer not.a.token",
    ),
    Case(
        "wrong-audience", "POST", REGISTER, 401, "unauthenticated", body=REG, token="wrong_audience"
    ),
    Case(
        "token-of-deleted-account",
        "POST",
        REGISTER,
        401,
        "unauthenticated",
        body=REG,
        token="deleted_account",
    ),
    Case(
        "no-token-and-bad-json",
        "POST",
        REGISTER,
        401,
        "unauthenticated",
        raw=b"{nope",
        token="none",
    ),
    Case(
        "pool-of-other-account",
        "POST",
        REGISTER,
        403,
        "wrong_pool",
        "pool",
        body={**REG, "pool": "theirs"},
    ),
    Case(
        "other-account-registers-for-demo",
        "POST",
        REGISTER,
        403,
        "wrong_pool",
        "pool",
        body=REG,
        token="other",
    ),
    Case(
        "other-account-claims-for-demo-worker",
        "POST",
        CLAIM,
        403,
        "wrong_worker",
        None,
        body={"wait_seconds": 0},
        token="other",
    ),
    Case(
        "other-account-heartbeats-demo-worker",
        "POST",
        HEARTBEAT,
        403,
        "wrong_worker",
        None,
        body={"attempt_ids": []},
        token="other",
    ),
    Case(
        "other-account-completes-demo-attempt",
        "POST",
        COMPLETE,
        403,
        "wrong_worker",
        None,
        body={"result": "stolen"},
        token="other",
    ),
    Case(
        "other-account-fails-demo-attempt",
        "POST",
        FAIL,
        403,
        "wrong_worker",
        None,
        body={"error_type": "Sabotage", "retryable": False},
        token="other",
    ),
    Case(
        "unknown-pool",
        "POST",
        REGISTER,
        404,
        "unknown_pool",
        "pool",
        body={**REG, "pool": "no-such-pool"},
    ),
    Case(
        "claim-by-unregistered-worker",
        "POST",
        "/v1/workers/never-registered/claim",
        404,
        "worker_not_registered",
        body={"wait_seconds": 0},
    ),
    Case(
        "heartbeat-by-unregistered-worker",
        "POST",
        "/v1/workers/never-registered/heartbeat",
        404,
        "worker_not_registered",
        body={"attempt_ids": []},
    ),
    Case(
        "non-ascii-token",
        "POST",
        REGISTER,
        401,
        "unauthenticated",
        body=REG,
        authorization=b"Bearer \xff\xfe\xfd",
    ),
    Case(
        "huge-authorization-header-20KiB",
        "POST",
        REGISTER,
        401,
        "unauthenticated",
        body=REG,
        authorization="Bearer " + "a" * 20_000,
    ),
]

BAD_REQUESTS = [
    # malformed bodies
    Case("invalid-json", "POST", REGISTER, 400, "malformed_json", raw=b'{"pool": "demo",'),
    Case("invalid-utf8", "POST", REGISTER, 400, "malformed_json", raw=b'{"pool": "\xff"}'),
    Case(
        "raw-null-byte-in-json",
        "POST",
        REGISTER,
        400,
        "malformed_json",
        raw=b'{"pool": "de\x00mo"}',
    ),
    Case(
        "integer-of-5000-digits",
        "POST",
        CLAIM,
        400,
        "malformed_json",
        raw=b'{"max_attempts": ' + b"9" * 5000 + b"}",
    ),
    Case("empty-body-register", "POST", REGISTER, 422, "invalid_request", "pool", raw=b""),
    Case("empty-body-fail", "POST", FAIL, 422, "invalid_request", "error_type", raw=b""),
    Case("empty-object-progress", "POST", PROGRESS, 422, "invalid_request", "percent", body={}),
    Case(
        "text-plain-content-type",
        "POST",
        REGISTER,
        415,
        "unsupported_media_type",
        raw=json.dumps(REG).encode(),
        content_type="text/plain",
    ),
    Case(
        "no-content-type",
        "POST",
        REGISTER,
        415,
        "unsupported_media_type",
        raw=json.dumps(REG).encode(),
        content_type=None,
    ),
    Case("json-array-not-object", "POST", REGISTER, 422, "invalid_request", body=[REG]),
    Case("json-null-body", "POST", REGISTER, 422, "invalid_request", raw=b"null"),
    # the model
    Case(
        "unknown-field",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "colour",
        body={**REG, "colour": "blue"},
    ),
    Case(
        "unknown-field-in-skill",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "skills.0.danger",
        body={**REG, "skills": [{"name": "echo", "danger": True}]},
    ),
    Case("unknown-field-in-claim", "POST", CLAIM, 422, "invalid_request", "wait", body={"wait": 1}),
    Case(
        "capacity-many",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "capacity",
        body={**REG, "capacity": "many"},
    ),
    Case(
        "capacity-zero",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "capacity",
        body={**REG, "capacity": 0},
    ),
    Case(
        "wait-seconds-1e9",
        "POST",
        CLAIM,
        422,
        "invalid_request",
        "wait_seconds",
        body={"wait_seconds": 1e9},
    ),
    Case(
        "wait-seconds-negative",
        "POST",
        CLAIM,
        422,
        "invalid_request",
        "wait_seconds",
        body={"wait_seconds": -1},
    ),
    Case(
        "max-attempts-zero",
        "POST",
        CLAIM,
        422,
        "invalid_request",
        "max_attempts",
        body={"max_attempts": 0},
    ),
    Case("percent-101", "POST", PROGRESS, 422, "invalid_request", "percent", body={"percent": 101}),
    Case(
        "percent-a-string",
        "POST",
        PROGRESS,
        422,
        "invalid_request",
        "percent",
        body={"percent": "half"},
    ),
    Case(
        "error-type-300-chars",
        "POST",
        FAIL,
        422,
        "invalid_request",
        "error_type",
        body={"error_type": "E" * 300},
    ),
    Case(
        "error-type-empty",
        "POST",
        FAIL,
        422,
        "invalid_request",
        "error_type",
        body={"error_type": ""},
    ),
    Case(
        "fail-message-5000-chars",
        "POST",
        FAIL,
        422,
        "invalid_request",
        "message",
        body={"error_type": "E", "message": "m" * 5000},
    ),
    Case(
        "retry-after-two-days",
        "POST",
        FAIL,
        422,
        "invalid_request",
        "retry_after_seconds",
        body={"error_type": "E", "retry_after_seconds": 172800},
    ),
    Case(
        "too-many-heartbeat-ids",
        "POST",
        HEARTBEAT,
        422,
        "invalid_request",
        "attempt_ids",
        body={"attempt_ids": [f"x.{i}" for i in range(1025)]},
    ),
    Case(
        "too-many-skills",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "skills",
        body={**REG, "skills": [{"name": f"s{i}"} for i in range(257)]},
    ),
    Case(
        "skill-name-with-slash",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "skills.0.name",
        body={**REG, "skills": [{"name": "../../bin/sh"}]},
    ),
    # hostile names
    Case(
        "worker-id-path-traversal",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "worker_id",
        body={**REG, "worker_id": "../../etc/passwd"},
    ),
    Case(
        "worker-id-unicode",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "worker_id",
        body={**REG, "worker_id": "w\u00f6rker-\u2603"},
    ),
    Case(
        "worker-id-null-byte",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "worker_id",
        body={**REG, "worker_id": "fake-1\u0000"},
    ),
    Case(
        "pool-lone-surrogate",
        "POST",
        REGISTER,
        422,
        "invalid_request",
        "pool",
        raw=b'{"pool": "\\ud800", "worker_id": "fake-1", "skills": []}',
    ),
    Case(
        "worker-id-traversal-in-path",
        "POST",
        "/v1/workers/..%2F..%2Fetc%2Fpasswd/claim",
        404,
        "worker_not_registered",
        body={"wait_seconds": 0},
    ),
    Case(
        "worker-id-unicode-in-path",
        "POST",
        "/v1/workers/w%C3%B6rker-%E2%98%83/heartbeat",
        404,
        "worker_not_registered",
        body={"attempt_ids": []},
    ),
    Case(
        "worker-id-null-byte-in-path",
        "POST",
        "/v1/workers/fake-1%00/claim",
        404,
        "worker_not_registered",
        body={"wait_seconds": 0},
    ),
    # size
    Case(
        "body-over-1MiB",
        "POST",
        REGISTER,
        413,
        "body_too_large",
        body={**REG, "version": "x" * (MAX_REQUEST_BYTES + 1)},
    ),
    Case(
        "json-nested-10000-levels",
        "POST",
        REGISTER,
        400,
        "malformed_json",
        raw=nested(10_000),
    ),
    Case(
        "result-nested-10000-levels",
        "POST",
        COMPLETE,
        400,
        "malformed_json",
        raw=b'{"result": ' + nested(10_000) + b"}",
    ),
    Case(
        "result-nested-500-levels",
        "POST",
        COMPLETE,
        400,
        "malformed_json",
        raw=b'{"result": ' + nested(500) + b"}",
    ),
    Case("result-nan", "POST", COMPLETE, 400, "malformed_json", raw=b'{"result": NaN}'),
    # attempts
    Case(
        "malformed-attempt-id",
        "POST",
        "/v1/attempts/not-an-attempt/complete",
        404,
        "unknown_attempt",
        body={"result": 1},
    ),
    Case(
        "attempt-id-path-traversal",
        "POST",
        "/v1/attempts/..%2F..%2Fhealthz/fail",
        404,
        "unknown_attempt",
        body={"error_type": "E"},
    ),
    Case(
        "attempt-id-200-chars",
        "POST",
        "/v1/attempts/" + "a" * 200 + ".1/progress",
        404,
        "unknown_attempt",
        body={"percent": 1},
    ),
    Case(
        "attempt-of-no-job",
        "POST",
        "/v1/attempts/{ghost}.1/complete",
        404,
        "unknown_attempt",
        body={"result": 1},
    ),
    Case(
        "complete-finished-attempt",
        "POST",
        "/v1/attempts/{done}/complete",
        409,
        "attempt_not_current",
        body={"result": "again"},
    ),
    Case(
        "fail-finished-attempt",
        "POST",
        "/v1/attempts/{done}/fail",
        409,
        "attempt_not_current",
        body={"error_type": "Late"},
    ),
    Case(
        "complete-queued-job-attempt-1",
        "POST",
        "/v1/attempts/{queued}.1/complete",
        409,
        "attempt_not_current",
        body={"result": "never ran"},
    ),
    Case(
        "fail-queued-job-attempt-0",
        "POST",
        "/v1/attempts/{queued}.0/fail",
        409,
        "attempt_not_current",
        body={"error_type": "E", "retryable": False},
    ),
    Case(
        "progress-queued-job-attempt-1",
        "POST",
        "/v1/attempts/{queued}.1/progress",
        409,
        "attempt_not_current",
        body={"percent": 50},
    ),
    # routes
    Case("get-on-post-route", "GET", REGISTER, 405, "method_not_allowed"),
    Case(
        "delete-on-post-route", "DELETE", "/v1/attempts/{done}/complete", 405, "method_not_allowed"
    ),
    Case("unknown-route", "POST", "/v1/workers", 404, "not_found", body=REG),
    Case("unknown-version", "POST", "/v2/workers/register", 404, "not_found", body=REG),
]


def params(cases: list[Case]) -> list:
    assert len({c.id for c in cases}) == len(cases), "case ids must be unique"
    return [
        pytest.param(
            case,
            id=case.id,
            marks=[pytest.mark.xfail(strict=True, reason=case.bug)] if case.bug else [],
        )
        for case in cases
    ]


@contextlib.contextmanager
def prepared(env: Env, case: Case, queued_uid: str) -> Iterator[tuple[str, Assignment | None]]:
    """The case's path with its placeholders filled in (and a running attempt if it names one)."""
    values = {
        "worker": "fake-1",
        "done": env.done_attempt,
        "queued": queued_uid,
        "ghost": str(uuid.uuid4()),
    }
    if "{running}" in case.path:
        with running_attempt(env) as assignment:
            yield case.path.format(running=assignment.attempt_id, **values), assignment
    else:
        yield case.path.format(**values), None


def send(env: Env, case: Case, path: str) -> httpx.Response:
    headers: dict[str, str | bytes] = {}
    if case.authorization is not None:
        headers["Authorization"] = case.authorization
    elif case.token != "none":
        headers["Authorization"] = f"Bearer {env.tokens[case.token]}"
    content = case.raw if case.raw is not None else None
    if content is None and case.body is not None:
        content = json.dumps(case.body).encode()
    if content is not None and case.content_type:
        headers["Content-Type"] = case.content_type
    if case.status != 401:
        return env.api.http.request(case.method, path, content=content, headers=headers)
    # Failed authentications are rate-limited per client address: each such case comes
    # from an address of its own, so that no case is refused for its neighbours' sins.
    source = f"127.0.{100 + next(env.counter) % 150}.1"
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=env.api.http.base_url, transport=transport, trust_env=False) as http:
        return http.request(case.method, path, content=content, headers=headers)


def check_case(env: Env, case: Case) -> None:
    env.keep_alive()
    offset = env.log_size()
    with prepared(env, case, env.queued_uid) as (path, running):
        running_before = env.state(running.job.name) if running else None
        response = send(env, case, path)
        assert_error(response, case.status, case.code, case.field)
        if running:
            assert env.state(running.job.name) == running_before, "the running job changed"
    assert env.state(env.queued_name) == env.queued_state, "the Queued job changed"
    log = env.log_since(offset)
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("case", params(AUTH_CASES))
def test_auth(env, case):
    check_case(env, case)


@pytest.mark.parametrize("case", params(BAD_REQUESTS))
def test_bad_request_gets_a_precise_4xx(env, case):
    check_case(env, case)


def test_bad_requests_change_nothing(env):
    """Every request of both tables, back to back: a Queued Job keeps its resourceVersion
    and status, and stays claimable (its place in the queue is intact)."""
    uid, before = make_queued_job(env.cluster, env.namespace, "untouched", "later")
    env.keep_alive()
    for case in AUTH_CASES + BAD_REQUESTS:
        with prepared(env, case, uid) as (path, _):
            send(env, case, path)  # the tables above check each answer
    assert env.state("untouched") == before
    assert env.state(env.queued_name) == env.queued_state
    env.api.register("late-worker", {"later": OBJECT})
    [assignment] = env.api.claim("late-worker", wait=10)
    assert (assignment.job.name, assignment.attempt) == ("untouched", 1)
    assert assignment.attempt_id == f"{uid}.1"
    assert_ack(env.api.complete(assignment.attempt_id, {"fine": True}))
    status = wait_phase(env.cluster, env.namespace, "untouched", ("Succeeded",))
    assert status["result"] == {"fine": True}


# -- the protocol by hand, each on a fresh operator -------------------------------------------


def fake_worker(cluster, namespace: str, operator, skills: dict[str, dict]) -> Api:
    apply(cluster, namespace, pool_manifest("demo", replicas=0))
    api = Api(operator.url, create_token(cluster, namespace))
    registered = api.register_when_pool_known("fake-1", skills)
    assert registered == RegisterResponse(
        worker_id="fake-1", heartbeat_interval_seconds=1.0, lease_seconds=LEASE_SECONDS
    )
    return api


def test_happy_path_by_hand(cluster, namespace, operator):
    api = fake_worker(cluster, namespace, operator, {"echo": OBJECT})
    apply(cluster, namespace, job_manifest("hello", "echo", {"text": "hi", "n": 3}))
    [assignment] = api.claim("fake-1", wait=20)
    uid = uid_of(cluster, namespace, "hello")
    assert assignment == Assignment(
        attempt_id=f"{uid}.1",
        job=JobRef(namespace=namespace, name="hello", uid=uid),
        attempt=1,
        skill="echo",
        params={"text": "hi", "n": 3},
        deadline=None,
        lease_seconds=LEASE_SECONDS,
    )
    # The claim is written to the Job before the worker hears of it.
    status = job_status(cluster, namespace, "hello")
    assert (status["phase"], status["attempt"], status["worker"]) == ("Running", 1, "fake-1")
    assert api.heartbeat("fake-1", [assignment.attempt_id]) == []
    assert_ack(api.progress(assignment.attempt_id, 40, "halfway there"))

    result = {"echo": "hi", "items": [1, 2, 3], "nested": {"ok": True}}
    assert_ack(api.complete(assignment.attempt_id, result))
    status = job_status(cluster, namespace, "hello")
    assert status["phase"] == "Succeeded"
    assert status["result"] == result
    assert status["attempt"] == 1
    assert "error" not in status
    [record] = status["attempts"]
    assert (record["attempt"], record["worker"], record["outcome"]) == (1, "fake-1", "Succeeded")

    # A job can never succeed twice, nor fail after it succeeded.
    before = job_state(cluster, namespace, "hello")
    assert_error(api.complete(assignment.attempt_id, "again"), 409, "attempt_not_current")
    assert_error(api.fail(assignment.attempt_id, "Late"), 409, "attempt_not_current")
    assert_error(api.progress(assignment.attempt_id, 99), 409, "attempt_not_current")
    assert api.heartbeat("fake-1", [assignment.attempt_id]) == [
        Command(
            type=CommandType.abandon,
            attempt_id=assignment.attempt_id,
            reason="the attempt is no longer current",
        )
    ]
    assert job_state(cluster, namespace, "hello") == before


def test_params_that_break_the_schema_fail_the_job_without_running_it(cluster, namespace, operator):
    api = fake_worker(cluster, namespace, operator, {"resize": RESIZE})
    apply(cluster, namespace, job_manifest("resize-bad", "resize", {"width": "wide"}))
    claimed: list[Assignment] = []

    def failed() -> dict | None:
        claimed.extend(api.claim("fake-1", wait=2))
        status = job_status(cluster, namespace, "resize-bad")
        return status if status.get("phase") == "Failed" else None

    status = wait_until(failed, timeout=40, interval=0.2, what="resize-bad to fail")
    assert claimed == []
    assert status["attempt"] == 0  # it never ran
    assert status.get("attempts", []) == []
    assert "worker" not in status
    assert status["error"]["type"] == "InvalidParams"
    assert status["error"]["retryable"] is False
    assert "spec.params.width" in status["error"]["message"], status["error"]
    assert '"wide" is not of type "integer"' in status["error"]["message"], status["error"]

    # The same skill with good params runs.
    apply(cluster, namespace, job_manifest("resize-ok", "resize", {"width": 640}))
    [assignment] = api.claim("fake-1", wait=20)
    assert (assignment.job.name, assignment.params) == ("resize-ok", {"width": 640})
    assert_ack(api.complete(assignment.attempt_id, {"width": 640}))
    assert wait_phase(cluster, namespace, "resize-ok", ("Succeeded",))["attempt"] == 1
    assert job_status(cluster, namespace, "resize-bad") == status  # and the failed one stays


def test_result_over_the_inline_limit_fails_the_job(cluster, namespace, operator):
    api = fake_worker(cluster, namespace, operator, {"echo": OBJECT})
    # Exactly at the limit (serialised, with its quotes) is fine ...
    at_limit = "x" * (MAX_INLINE_RESULT_BYTES - 2)
    apply(cluster, namespace, job_manifest("at-limit", "echo", {}))
    [assignment] = api.claim("fake-1", wait=20)
    assert_ack(api.complete(assignment.attempt_id, at_limit))
    assert wait_phase(cluster, namespace, "at-limit", ("Succeeded",))["result"] == at_limit

    # ... one byte over is refused and fails the job, not retryable.
    apply(cluster, namespace, job_manifest("over-limit", "echo", {}))
    [assignment] = api.claim("fake-1", wait=20)
    error = assert_error(
        api.complete(assignment.attempt_id, at_limit + "x"), 413, "result_too_large", "result"
    )
    assert str(MAX_INLINE_RESULT_BYTES) in error.message
    status = job_status(cluster, namespace, "over-limit")
    assert status["phase"] == "Failed"
    assert status["attempt"] == 1
    assert "result" not in status
    assert status["error"]["type"] == "ResultTooLarge"
    assert status["error"]["retryable"] is False
    [record] = status["attempts"]
    assert (record["outcome"], record["errorType"]) == ("Failed", "ResultTooLarge")
    # The attempt is over: a small result afterwards cannot make it succeed.
    assert_error(api.complete(assignment.attempt_id, "small"), 409, "attempt_not_current")
    assert job_status(cluster, namespace, "over-limit") == status


def test_lease_expiry_hands_the_job_to_another_worker(cluster, namespace, operator):
    api = fake_worker(cluster, namespace, operator, {"echo": OBJECT})
    apply(cluster, namespace, job_manifest("lost", "echo", {"n": 1}))
    [first] = api.claim("fake-1", wait=20)
    claimed_at = time.monotonic()
    assert first.attempt == 1
    # fake-1 never heartbeats: after the lease the attempt ends and the job waits again.
    status = wait_phase(cluster, namespace, "lost", ("Retrying", "Queued"), timeout=30)
    assert time.monotonic() - claimed_at >= LEASE_SECONDS - 1.0
    assert status["attempt"] == 1
    assert "worker" not in status
    [record] = status["attempts"]
    assert (record["attempt"], record["worker"]) == (1, "fake-1")
    assert (record["outcome"], record["errorType"]) == ("LeaseExpired", "LeaseExpired")

    api.register("fake-2", {"echo": OBJECT})
    [second] = api.claim("fake-2", wait=20)
    uid = uid_of(cluster, namespace, "lost")
    assert (second.job.name, second.attempt, second.attempt_id) == ("lost", 2, f"{uid}.2")
    status = job_status(cluster, namespace, "lost")
    assert (status["phase"], status["attempt"], status["worker"]) == ("Running", 2, "fake-2")

    # The first worker comes back too late: its reports are refused and change nothing.
    before = job_state(cluster, namespace, "lost")
    assert_error(api.complete(first.attempt_id, "late"), 409, "attempt_not_current")
    assert_error(api.fail(first.attempt_id, "Late"), 409, "attempt_not_current")
    assert [c.type for c in api.heartbeat("fake-1", [first.attempt_id])] == [CommandType.abandon]
    assert job_state(cluster, namespace, "lost") == before

    assert_ack(api.complete(second.attempt_id, "second time lucky"))
    status = job_status(cluster, namespace, "lost")
    assert (status["phase"], status["attempt"]) == ("Succeeded", 2)
    assert status["result"] == "second time lucky"
    assert [(r["attempt"], r["outcome"]) for r in status["attempts"]] == [
        (1, "LeaseExpired"),
        (2, "Succeeded"),
    ]


def test_heartbeats_keep_the_lease_without_writing_the_job(cluster, namespace, operator):
    api = fake_worker(cluster, namespace, operator, {"echo": OBJECT})
    apply(cluster, namespace, job_manifest("kept", "echo", {}))
    [assignment] = api.claim("fake-1", wait=20)
    running = job_state(cluster, namespace, "kept")
    end = time.monotonic() + 2 * LEASE_SECONDS
    for _ in range(int(4 * LEASE_SECONDS)):  # bounded; one heartbeat a second
        if time.monotonic() >= end:
            break
        assert api.heartbeat("fake-1", [assignment.attempt_id]) == []
        time.sleep(1.0)
    assert job_state(cluster, namespace, "kept") == running  # still attempt 1, no writes
    # Past the attempt's first interval, progress is written to the Job.
    assert_ack(api.progress(assignment.attempt_id, 40, "halfway there"))
    status = wait_until(
        lambda: (s := job_status(cluster, namespace, "kept")).get("progress") and s,
        timeout=10,
        what="progress in the Job's status",
    )
    assert (status["progress"]["percent"], status["progress"]["message"]) == (40, "halfway there")
    assert (status["phase"], status["attempt"]) == ("Running", 1)
    assert_ack(api.complete(assignment.attempt_id, 1))
    status = wait_phase(cluster, namespace, "kept", ("Succeeded",))
    assert [r["outcome"] for r in status["attempts"]] == ["Succeeded"]


def test_health_readiness_and_metrics(cluster, namespace, operator):
    http = httpx.Client(base_url=operator.url, timeout=10.0, trust_env=False)
    with http:
        healthz = http.get("/healthz")
        assert (healthz.status_code, healthz.json()) == (200, {"ok": True})
        readyz = http.get("/readyz")
        assert (readyz.status_code, readyz.json()) == (200, {"ready": True})
        assert_error(http.post("/healthz"), 405, "method_not_allowed")
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain"), metrics.headers
        assert "# HELP shiftboss_jobs_claimed_total" in metrics.text
        assert "shiftboss_leader 1.0" in metrics.text.splitlines()  # it serves

        api = fake_worker(cluster, namespace, operator, {"echo": OBJECT})
        apply(cluster, namespace, job_manifest("counted", "echo", {}))
        [assignment] = api.claim("fake-1", wait=20)
        sample = f'shiftboss_jobs_claimed_total{{namespace="{namespace}",pool="demo"}} 1.0'
        assert sample in http.get("/metrics").text.splitlines()
        assert_ack(api.complete(assignment.attempt_id, None))
        api.close()
