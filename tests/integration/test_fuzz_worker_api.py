"""Protocol fuzzing of the worker API, from its checked-in OpenAPI document, against a
real operator on the real control plane.

Schemathesis generates requests for every operation, valid ones and invalid ones
(negative mode: wrong types, missing fields, bodies that are not JSON, missing
headers).  Generating is what costs (tens of milliseconds a case on this machine), so
each generated case is sent several times: as generated, with a valid token, without
one, with a junk one, and with its path pointing at real workers and attempts
(a running attempt, attempts of finished and waiting jobs, the workers holding them).

The fuzzer's token is valid, but its service account runs only an empty pool: every
Job in the namespace belongs to another identity's pool, so no request it sends may
change one, valid or not.  Asserted: no 5xx at all; every 4xx is a JSON ErrorResponse;
every 200 parses as its response model; no Job or WorkerPool changed.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from conftest import apply, get, job_manifest, pool_manifest
from fakeworker import Api, assert_ack, create_token, wait_phase
from hypothesis import HealthCheck, Phase, given, seed, settings
from pydantic import BaseModel, ValidationError
from schemathesis import GenerationMode
from security_helpers import OBJECT, create_account, register_when_known

from worker_runtime.protocol import (
    Ack,
    ClaimResponse,
    ErrorResponse,
    HeartbeatResponse,
    RegisterResponse,
)

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "worker-api.openapi.json"
FUZZER = "fuzzer"
#: Requests to send at least, and the time the generation may take (it stops early
#: once enough requests were sent).
MIN_REQUESTS = 10_000
BUDGET_SECONDS = 90.0
#: Examples hypothesis generates per operation and mode in one go (one seed each).
CHUNK = 25
#: Long polls are cut to this (the spec allows 60 s): the budget is for requests.
MAX_WAIT_SECONDS = 0.1
ANSWERS: dict[str, type[BaseModel]] = {
    "register": RegisterResponse,
    "claim": ClaimResponse,
    "heartbeat": HeartbeatResponse,
    "progress": Ack,
    "complete": Ack,
    "fail": Ack,
    "release": Ack,
}


@dataclass
class Targets:
    """Real names a path can point at, cycled through by the variants."""

    workers: list[str]
    attempts: list[str]

    def pick(self, parameter: str, index: int) -> str:
        names = self.workers if parameter == "worker_id" else self.attempts
        return names[index % len(names)]


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[tuple[str, int]] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    cases: int = 0
    #: Requests the HTTP client refused to send (a header it cannot encode): not sent.
    unsendable: int = 0

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def check(self, operation: str, request: dict[str, Any], response: requests.Response) -> None:
        status = response.status_code
        self.statuses[status] += 1
        self.by_operation[operation, status] += 1
        problem = _problem(operation, response)
        if problem:
            self._violation(f"{_describe(request)} -> {status}: {problem}: {response.text[:300]}")

    def no_answer(self, request: dict[str, Any], exc: Exception) -> None:
        self.statuses[0] += 1
        self._violation(f"{_describe(request)} -> no answer: {exc!r}")

    def _violation(self, text: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(text)


def _describe(request: dict[str, Any]) -> str:
    body = request.get("json", request.get("data"))
    return (
        f"{request['method']} {request['url']} token={_token_kind(request)} "
        f"body={str(body)[:300]!r}"
    )


def _token_kind(request: dict[str, Any]) -> str:
    header = request["headers"].get("Authorization")
    return "none" if header is None else header[:20]


def _problem(operation: str, response: requests.Response) -> str | None:
    status = response.status_code
    if status >= 500:
        return "a server error"
    try:
        document = response.json()
    except ValueError:
        return "not JSON"
    if not response.headers.get("content-type", "").startswith("application/json"):
        return "not labelled JSON"
    model: type[BaseModel] = ErrorResponse if status >= 400 else ANSWERS[operation]
    try:
        parsed = model.model_validate(document)
    except ValidationError as exc:
        return f"not a {model.__name__}: {exc.errors()[:2]}"
    if isinstance(parsed, ErrorResponse) and not parsed.error.message.strip():
        return "an error without a message"
    return None


def _cut_long_polls(request: dict[str, Any]) -> None:
    """Claims wait ``MAX_WAIT_SECONDS`` at most (their default is 20 s), whether the body
    goes as JSON or as raw bytes that happen to be a JSON object."""
    body, raw = request.get("json"), request.get("data")
    if isinstance(raw, bytes):
        try:
            body = json.loads(raw)
        except ValueError:
            return
    if not isinstance(body, dict):
        return
    wait = body.get("wait_seconds", MAX_WAIT_SECONDS + 1)
    if isinstance(wait, int | float) and not isinstance(wait, bool) and wait > MAX_WAIT_SECONDS:
        body["wait_seconds"] = MAX_WAIT_SECONDS
        if isinstance(raw, bytes):
            request["data"] = json.dumps(body).encode()


class Fuzzer:
    def __init__(self, url: str, token: str, targets: Targets, pools: list[str]) -> None:
        self.url, self.token, self.targets, self.pools = url, token, targets, pools
        self.session = requests.Session()
        self.session.trust_env = False
        self.tally = Tally()
        self.variant = 0

    def send(self, case: schemathesis.Case, operation: str) -> None:
        """The case as generated, then in variants of token, path and pool."""
        self.tally.cases += 1
        for token, retarget in self._variants(case):
            self.variant += 1
            kwargs = case.as_transport_kwargs(base_url=self.url)
            if retarget is not None:
                kwargs["url"] = self.url + retarget
            headers = kwargs["headers"]
            if token == "none":
                headers.pop("Authorization", None)
            elif token == "junk":
                headers["Authorization"] = f"Bearer junk.{uuid.uuid4().hex}.x"
            elif token == "valid":
                headers["Authorization"] = f"Bearer {self.token}"
            if operation == "claim":
                _cut_long_polls(kwargs)
            try:
                response = self.session.request(**kwargs, timeout=15)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self.tally.no_answer(kwargs, exc)
                continue
            except (requests.RequestException, ValueError):
                self.tally.unsendable += 1  # refused by the client: it never left
                continue
            self.tally.check(operation, kwargs, response)

    def _variants(self, case: schemathesis.Case) -> Iterator[tuple[str, str | None]]:
        """(token, path or None for the generated one): mostly the valid token; one in
        seven (one in five for register) without a token or with a junk one, and one
        with schemathesis's own header (a random token, or none)."""
        unauthenticated = "none" if self.tally.cases % 2 else "junk"
        yield "valid", None
        yield "generated", None
        parameters = dict(case.path_parameters or {})
        if not parameters:  # register: aim the body at real pools and worker ids
            for pool in self.pools:
                body = case.body
                if isinstance(body, dict):
                    body["pool"] = pool
                    body["worker_id"] = self.targets.pick("worker_id", self.variant)
                yield "valid", None
            yield unauthenticated, None
            return
        for token in ("valid", "valid", "valid", "valid", unauthenticated):
            real = {p: self.targets.pick(p, self.variant) for p in parameters}
            yield token, case.operation.path.format(**real)


def generate(schema: Any, deadline: float, enough: Callable[[], bool]) -> Iterator[tuple]:
    """(operation id, strategy, seed) in rounds over every operation and both modes."""
    operations = [result.ok() for result in schema.get_all_operations()]
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    for round_ in range(10_000):  # bounded; the deadline or ``enough`` ends it first
        for operation in operations:
            for mode in modes:
                if time.monotonic() >= deadline or enough():
                    return
                strategy = operation.as_strategy(generation_mode=mode)
                yield operation.definition.raw["operationId"], strategy, round_


def snapshot(cluster, namespace: str) -> dict[str, str]:
    """resourceVersion of every Job and WorkerPool in the namespace."""
    versions = {}
    for kind in ("jobs.shiftboss.io", "workerpools.shiftboss.io"):
        for item in get(cluster, namespace, kind)["items"]:
            versions[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return versions


class Heartbeats:
    """Keeps the holder's leases on the attempts in ``held`` (one heartbeat a second)."""

    def __init__(self, api: Api, worker_id: str) -> None:
        self.api, self.worker_id = api, worker_id
        self.held: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="holder-heartbeats", daemon=True)

    def __enter__(self) -> Heartbeats:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        for _ in range(10_000):  # bounded; one a second until stopped
            try:
                commands = self.api.heartbeat(self.worker_id, list(self.held))
                if commands:
                    self.failures.append(f"commands: {commands}")
            except Exception as exc:  # recorded and asserted on by the test
                self.failures.append(repr(exc))
            if self._stop.wait(1.0):
                return


def fuzz_chunk(fuzzer: Fuzzer, operation: str, strategy: Any, round_: int) -> None:
    """Send ``CHUNK`` cases drawn from ``strategy`` (reproducible: seeded by the round)."""

    @seed(round_)
    @settings(
        max_examples=CHUNK,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def fuzz(case: schemathesis.Case) -> None:
        fuzzer.send(case, operation)

    fuzz()


def set_scene(cluster, namespace: str, holder: Api, heartbeats: Heartbeats) -> Targets:
    """Jobs in every phase, held by ``holder`` (service account default, pool demo),
    whose running attempt ``heartbeats`` keeps; returns the names to fuzz paths with."""
    ended: dict[str, str] = {}

    def claim(name: str, **spec: Any) -> str:
        apply(cluster, namespace, job_manifest(name, "work", {"job": name}, **spec))
        [assignment] = holder.claim("holder", wait=20)
        assert assignment.job.name == name
        return assignment.attempt_id

    ended["succeeded"] = claim("succeeded")
    assert_ack(holder.complete(ended["succeeded"], {"done": True}))
    ended["failed"] = claim("failed")
    assert_ack(holder.fail(ended["failed"], "Broken", "no", retryable=False))
    backoff = {"initialDelaySeconds": 3600, "maxDelaySeconds": 3600}
    ended["retrying"] = claim("retrying", retry={"maxAttempts": 3, "backoff": backoff})
    assert_ack(holder.fail(ended["retrying"], "Flaky", "later", retryable=True))
    running = claim("running")
    heartbeats.held.append(running)
    apply(
        cluster,
        namespace,
        job_manifest("queued", "nobody-offers-this", {}),
        job_manifest("cancelled", "nobody-offers-this", {}, cancel=True),
    )
    for name, phase in [
        ("succeeded", "Succeeded"),
        ("failed", "Failed"),
        ("retrying", "Retrying"),
        ("running", "Running"),
        ("queued", "Queued"),
        ("cancelled", "Cancelled"),
    ]:
        wait_phase(cluster, namespace, name, (phase,))
    queued_uid = get(cluster, namespace, "jobs.shiftboss.io", "queued")["metadata"]["uid"]
    attempts = [running, *ended.values(), f"{queued_uid}.1", f"{uuid.uuid4()}.1"]
    return Targets(["holder", "fuzz-worker", "never-registered"], attempts)


@pytest.mark.timeout(240)
def test_fuzzing_the_worker_api_finds_no_5xx_and_changes_nothing(cluster, namespace, operator):
    create_account(cluster, namespace, FUZZER)
    apply(
        cluster,
        namespace,
        pool_manifest("demo", replicas=0),
        pool_manifest("fuzz-pool", replicas=0, serviceAccountName=FUZZER),
    )
    holder = Api(operator.url, create_token(cluster, namespace))
    register_when_known(holder, "demo", "holder", {"work": OBJECT})
    token = create_token(cluster, namespace, FUZZER)
    register_when_known(Api(operator.url, token), "fuzz-pool", "fuzz-worker", {"fuzz": OBJECT})
    schema = schemathesis.openapi.from_path(OPENAPI)
    with Heartbeats(Api(operator.url, holder.token), "holder") as heartbeats:
        targets = set_scene(cluster, namespace, holder, heartbeats)
        before = snapshot(cluster, namespace)
        fuzzer = Fuzzer(operator.url, token, targets, ["fuzz-pool", "demo"])
        started = time.monotonic()
        for operation, strategy, round_ in generate(
            schema, started + BUDGET_SECONDS, lambda: fuzzer.tally.sent >= MIN_REQUESTS
        ):
            fuzz_chunk(fuzzer, operation, strategy, round_)
    seconds = time.monotonic() - started
    tally = fuzzer.tally
    print(
        f"\nfuzzing: {tally.sent} requests from {tally.cases} generated cases in {seconds:.1f} s "
        f"({tally.unsendable} not sendable); "
        f"statuses {dict(sorted(tally.statuses.items()))}; "
        f"per operation {dict(sorted(tally.by_operation.items()))}"
    )
    # The fuzzer holds no attempt: a report it got accepted would be a forgery.
    reports = ("progress", "complete", "fail", "release")
    assert [k for k in tally.by_operation if k[0] in reports and k[1] < 300] == []
    assert tally.violations == [], "\n".join(tally.violations)
    assert snapshot(cluster, namespace) == before
    assert heartbeats.failures == []
    assert tally.sent >= MIN_REQUESTS
