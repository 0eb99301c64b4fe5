"""Attacks on the worker API, on the real control plane with the real operator.

Each test is what an attacker with a foothold in the cluster would try, sent as raw HTTP:
forging another pool's outcomes, flooding junk tokens, using a deleted pod's token,
bloating the operator with registrations, stalling it with a catastrophic regex, and
fishing another namespace's names out of error messages.  Each asserts exact answers
and counts what it cost; the numbers it prints go in the closing note of issue 6.

Pods that must have a real identity but must not register by themselves run a dormant
worker (``security_helpers.dormant_pool``); the test speaks for them with the token the
node projected into them.
"""

from __future__ import annotations

import base64
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import apply, get, job_manifest, pool_manifest, wait_ready_workers
from fakeworker import (
    Api,
    assert_ack,
    assert_error,
    create_token,
    job_state,
    job_status,
    register_body,
    wait_phase,
)
from security_helpers import (
    LEASE_SECONDS,
    OBJECT,
    REGISTER,
    HealthProbe,
    PoolPod,
    attempt_reports,
    create_account,
    dormant_pool,
    operator_for,
    percentile,
    refusal,
    register_when_known,
    require_local,
    rss_mib,
    tokenreviews_posted,
    worker_requests,
)

from shiftboss.testing.processes import wait_until
from worker_runtime.protocol import MAX_REQUEST_BYTES, Command, CommandType

JOBS = "jobs.shiftboss.io"
REFUSED = {401: "unauthenticated", 429: "rate_limited"}
ABANDON = "the attempt is no longer current"


# -- 1. cross-pool forgery ----------------------------------------------------------------------

ALPHA, BRAVO = "alpha", "bravo"


@dataclass
class TwoPools:
    """Pool ``a`` runs under service account alpha (the attacker holds an external token
    of it); pool ``b`` under bravo, with one pod whose worker the test plays."""

    namespace: str
    attacker: Api
    bravo: Api
    pod: PoolPod
    attacker_token: str

    def reconnect(self, url: str) -> None:
        """New connections after an operator restart (same port)."""
        self.attacker.close()
        self.bravo.close()
        self.attacker = Api(url, self.attacker_token)
        self.bravo = Api(url, self.pod.token)

    def bravo_claims(self, cluster, job: str) -> str:
        apply(cluster, self.namespace, job_manifest(job, "task-b", {"job": job}, pool="b"))
        [assignment] = self.bravo.claim(self.pod.name, wait=20)
        assert assignment.job.name == job
        status = job_status(cluster, self.namespace, job)
        assert (status["phase"], status["attempt"], status["worker"]) == (
            "Running",
            1,
            self.pod.name,
        )
        return assignment.attempt_id


@pytest.fixture
def two_pools(cluster, namespace, operator, tmp_path) -> Iterator[TwoPools]:
    local = require_local(cluster, "the test reads the pool pod's projected token file")
    for account in (ALPHA, BRAVO):
        create_account(cluster, namespace, account)
    apply(cluster, namespace, pool_manifest("a", replicas=0, serviceAccountName=ALPHA))
    pod = dormant_pool(local, namespace, "b", BRAVO, tmp_path / "pool-b")
    token = create_token(cluster, namespace, ALPHA)
    env = TwoPools(namespace, Api(operator.url, token), Api(operator.url, pod.token), pod, token)
    register_when_known(env.attacker, "a", "alpha-1", {"task-a": OBJECT})
    env.bravo.register(pod.name, {"task-b": OBJECT}, pool="b")
    yield env
    env.attacker.close()
    env.bravo.close()


def assert_bravo_finishes(cluster, env: TwoPools, job: str, attempt_id: str, result: dict) -> None:
    assert_ack(env.bravo.complete(attempt_id, result))
    status = wait_phase(cluster, env.namespace, job, ("Succeeded",))
    assert status["result"] == result
    assert status["attempt"] == 1
    assert [(a["attempt"], a["worker"], a["outcome"]) for a in status["attempts"]] == [
        (1, env.pod.name, "Succeeded")
    ]


def test_cross_pool_forgery_is_refused_and_the_real_worker_keeps_working(cluster, two_pools):
    env, namespace = two_pools, two_pools.namespace
    attempt = env.bravo_claims(cluster, "b-job")
    before = job_state(cluster, namespace, "b-job")

    # Squatting the worker id of B's pod: it registered first, so the id is its own.
    squat = env.attacker.post(REGISTER, register_body("a", env.pod.name, {"task-a": OBJECT}))
    assert_error(squat, 409, "worker_id_taken", "worker_id")
    # Acting as B's worker, or reporting on its attempt (the operator resolves the
    # attempt to its lease holder, which another identity registered): 403 wrong_worker.
    for path, body in worker_requests(env.pod.name, attempt) + attempt_reports(attempt):
        assert_error(env.attacker.post(path, body), 403, "wrong_worker")
    # The attacker's own registered worker lists B's attempt: abandoned, not renewed.
    assert env.attacker.heartbeat("alpha-1", [attempt]) == [
        Command(type=CommandType.abandon, attempt_id=attempt, reason=ABANDON)
    ]
    assert job_state(cluster, namespace, "b-job") == before

    # B keeps working: its heartbeats renew the lease past its length, without a write.
    end = time.monotonic() + LEASE_SECONDS + 1.5
    for _ in range(40):  # bounded: one heartbeat every half second
        assert env.bravo.heartbeat(env.pod.name, [attempt]) == []
        if time.monotonic() >= end:
            break
        time.sleep(0.5)
    assert job_state(cluster, namespace, "b-job") == before
    assert_bravo_finishes(cluster, env, "b-job", attempt, {"by": "bravo"})


def test_a_squat_after_an_operator_restart_forges_nothing_and_the_pod_wins(
    cluster, operator, two_pools
):
    """After a restart the registry is empty, so the attacker can register B's worker id
    first (for its own pool a).  The attempt's lease names pool b, so every report of the
    squatter is refused; B's pod registers its own name again and wins."""
    env, namespace = two_pools, two_pools.namespace
    attempt = env.bravo_claims(cluster, "b-job")
    before = job_state(cluster, namespace, "b-job")
    operator.stop()
    operator.start()
    restarted = time.monotonic()
    env.reconnect(operator.url)

    env.attacker.register(env.pod.name, {"task-a": OBJECT}, pool="a")  # the squat: 200
    for path, body in attempt_reports(attempt):
        assert_error(env.attacker.post(path, body), 409, "attempt_not_current")
    # The squatter's heartbeats neither renew B's lease nor get it handed over (restored
    # leases are offered with ``assign`` at once, to the worker that holds them).
    assert env.attacker.heartbeat(env.pod.name, [attempt]) == [
        Command(type=CommandType.abandon, attempt_id=attempt, reason=ABANDON)
    ]
    assert env.attacker.heartbeat(env.pod.name, []) == []
    assert env.attacker.claim(env.pod.name, wait=0) == []
    assert job_state(cluster, namespace, "b-job") == before

    # B's runtime heartbeats first (it registers again only when told its worker is unknown).
    first_beat = env.bravo.post(
        f"/v1/workers/{env.pod.name}/heartbeat", {"attempt_ids": [attempt], "draining": False}
    )
    env.bravo.register(env.pod.name, {"task-b": OBJECT}, pool="b")  # a pod's name is its own
    assert env.bravo.heartbeat(env.pod.name, [attempt]) == []
    for path, body in worker_requests(env.pod.name, attempt) + attempt_reports(attempt):
        assert_error(env.attacker.post(path, body), 403, "wrong_worker")
    assert job_state(cluster, namespace, "b-job") == before
    assert_bravo_finishes(cluster, env, "b-job", attempt, {"by": "bravo", "after": "restart"})
    assert time.monotonic() - restarted < 2 * LEASE_SECONDS, "ran past the restore grace"
    # Last, so that everything above is checked whatever this says: a pod whose id was
    # squatted must be told to register again (the runtime does so on 404 only; on 403 it
    # keeps heartbeating in vain and loses its attempts when its lease runs out).
    assert_error(first_beat, 404, "worker_not_registered")


# -- 2. junk tokens -----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(segment: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return claims


class JunkTokens:
    """Junk bearer tokens, each new (so no cache of refusals helps the operator):
    random strings; JWTs with a real token's header and claims but a bogus signature
    (shaped right, so only a TokenReview can refuse them); real tokens for another
    audience; forged JWTs for another audience."""

    KINDS = ("random", "bogus-signature", "wrong-audience", "forged-wrong-audience")

    def __init__(self, real: str, wrong_audience: list[str], seed: int = 6) -> None:
        self.rng = random.Random(seed)
        self.header, payload, signature = real.split(".")
        self.claims = _claims(payload)
        self.signature_bytes = len(
            base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        )
        self.wrong_audience = wrong_audience

    def make(self, index: int) -> tuple[str, str]:
        kind = self.KINDS[index % len(self.KINDS)]
        if kind == "random":
            return kind, _b64(self.rng.randbytes(self.rng.randint(8, 64)))
        if kind == "wrong-audience":
            return kind, self.wrong_audience[index % len(self.wrong_audience)]
        claims = {**self.claims, "jti": str(uuid.UUID(int=self.rng.getrandbits(128)))}
        if kind == "forged-wrong-audience":
            claims["aud"] = ["someone-else"]
        signature = _b64(self.rng.randbytes(self.signature_bytes))
        return kind, f"{self.header}.{_b64(json.dumps(claims).encode())}.{signature}"


def test_a_thousand_junk_tokens_cost_a_handful_of_token_reviews(cluster, namespace, operator):
    local = require_local(cluster, "it counts the TokenReviews of its own API server")
    apply(cluster, namespace, pool_manifest("demo", replicas=0))
    real = create_token(cluster, namespace)
    worker = Api(operator.url, real)
    register_when_known(worker, "demo", "steady", {"steady-task": OBJECT})
    apply(cluster, namespace, job_manifest("steady-job", "steady-task", {"n": 1}))
    junk = JunkTokens(
        real, [create_token(cluster, namespace, audience=f"other-{i}") for i in range(3)]
    )
    endpoints = [
        ("/v1/workers/register", register_body("demo", "steady", {"steady-task": OBJECT})),
        ("/v1/workers/steady/claim", {"wait_seconds": 0}),
        ("/v1/workers/steady/heartbeat", {"attempt_ids": []}),
        ("/v1/attempts/00000000-0000-0000-0000-000000000000.1/complete", {"result": 1}),
    ]
    reviews_before = tokenreviews_posted(local)
    answers: Counter[tuple[str, int]] = Counter()
    held: list[str] = []
    http = httpx.Client(base_url=operator.url, timeout=10, trust_env=False)
    started = time.monotonic()
    with http:
        for i in range(1000):
            if i % 100 == 50:  # the valid worker, meanwhile: every answer as usual
                assert worker.heartbeat("steady", held) == []
            if i == 300:
                [assignment] = worker.claim("steady", wait=10)
                held.append(assignment.attempt_id)
            if i == 900:
                assert_ack(worker.complete(held.pop(), {"steady": True}))
            kind, token = junk.make(i)
            path, body = endpoints[(i // len(JunkTokens.KINDS)) % len(endpoints)]
            response = http.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            refusal(response, REFUSED)
            answers[kind, response.status_code] += 1
    seconds = time.monotonic() - started
    reviews = tokenreviews_posted(local) - reviews_before
    print(
        f"\n1,000 junk-token requests in {seconds:.1f} s cost {reviews} TokenReviews; "
        f"answers: {dict(sorted(answers.items()))}"
    )
    # Past a burst of 5, a failing address gets one request a second looked at (the
    # peer limit): every other junk request is refused unread with 429.
    unread = sum(n for (_, status), n in answers.items() if status == 429)
    assert 1000 - unread <= 5 + math.ceil(seconds), answers
    assert reviews <= 10, f"{reviews} TokenReviews for 1,000 junk requests"
    status = wait_phase(cluster, namespace, "steady-job", ("Succeeded",))
    assert (status["result"], status["attempt"]) == ({"steady": True}, 1)
    worker.close()


# -- 3. a deleted pod's token -------------------------------------------------------------------


def test_a_deleted_pods_token_is_refused_within_seconds(cluster, namespace, operator, tmp_path):
    local = require_local(cluster, "the test reads the pool pod's projected token file")
    pod = dormant_pool(local, namespace, "demo", "default", tmp_path / "pool")
    api = Api(operator.url, pod.token)
    api.register(pod.name, {"work": OBJECT}, pool="demo")
    apply(cluster, namespace, job_manifest("held", "work", {"n": 1}))
    [assignment] = api.claim(pod.name, wait=20)
    attempt = assignment.attempt_id
    # A second job waits its turn behind the first (a worker offers its skill: no write).
    apply(cluster, namespace, job_manifest("waiting", "work", {"n": 2}))
    heartbeat = f"/v1/workers/{pod.name}/heartbeat"
    assert api.heartbeat(pod.name, [attempt]) == []  # the token works

    deleted_at = time.monotonic()
    cluster.kubectl("-n", namespace, "delete", "pod", pod.name, "--wait=false")
    answers: list[int] = []
    for _ in range(600):  # bounded: one request every 50 ms, for 30 s at most
        response = api.post(heartbeat, {"attempt_ids": [attempt]})
        answers.append(response.status_code)
        if response.status_code != 200 or time.monotonic() - deleted_at > 30:
            break
        time.sleep(0.05)
    refused_after = time.monotonic() - deleted_at
    print(
        f"\ntoken of deleted pod {pod.name} refused {refused_after:.2f} s after the delete "
        f"({answers.count(200)} requests accepted meanwhile): {response.text}"
    )
    assert_error(response, 401, "unauthenticated")
    assert refused_after < 10

    # Nothing more with it: not registering, claiming, reporting on its old attempt.
    for path, body in [
        (REGISTER, register_body("demo", pod.name, {"work": OBJECT})),
        (f"/v1/workers/{pod.name}/claim", {"wait_seconds": 0}),
        *attempt_reports(attempt),
    ]:
        refusal(api.post(path, body), REFUSED)
    status = wait_until(
        lambda: (s := job_status(cluster, namespace, "held")).get("attempts") and s,
        timeout=30,
        what="the held job's attempt to end",
    )
    assert status["phase"] == "Queued", status
    assert "result" not in status
    assert [(a["worker"], a["outcome"]) for a in status["attempts"]] == [(pod.name, "Disrupted")]
    # Nobody claimed the waiting job with the dead token; once no live worker offers its
    # skill, at most a Queued status says so.
    waiting = job_status(cluster, namespace, "waiting")
    assert waiting.get("phase") in (None, "Queued"), waiting
    assert "attempts" not in waiting and "worker" not in waiting, waiting
    api.close()


# -- 4. repeated big registrations --------------------------------------------------------------


def wide_schema(size: int, salt: str) -> dict[str, Any]:
    """An object schema of about ``size`` bytes of compact JSON made of many small
    properties: the shape that costs the operator most memory per byte."""
    one = len(json.dumps({f"{salt}00000": {"type": "integer"}}, separators=(",", ":"))) - 1
    count = max(1, (size - 40) // one)
    props = {f"{salt}{i:05d}": {"type": "integer"} for i in range(count)}
    return {"type": "object", "properties": props}


def body_of(pool: str, worker_id: str, schemas: list[dict[str, Any]]) -> dict[str, Any]:
    skills = {f"skill{i}": schema for i, schema in enumerate(schemas)}
    return register_body(pool, worker_id, skills)


KIB = 1024
PER_SCHEMA = 63 * KIB  # under the 64 KiB limit per schema


@dataclass(frozen=True)
class Variation:
    name: str
    #: Its own service account and pool, so that each has its own registration rate.
    account: str
    #: The worker id, suffixed with the registration's number when ``distinct_ids``.
    worker_id: str
    distinct_ids: bool
    #: The schemas of registration n (distinct per registration, as an attacker sends).
    schemas: Callable[[int], list[dict[str, Any]]]
    status: int
    #: The refusal: error code, field at fault, and the limit its message names.
    refusal: tuple[str, str | None, str] | None = None


VARIATIONS = [
    Variation(
        name="1 MiB in one schema, one id",
        account="v-one",
        worker_id="big",
        distinct_ids=False,
        schemas=lambda n: [wide_schema(MAX_REQUEST_BYTES, f"a{n}")],
        status=413,
        refusal=("body_too_large", None, f"{MAX_REQUEST_BYTES} bytes"),
    ),
    Variation(
        name="0.95 MiB in 15 schemas of 63 KiB, distinct ids",
        account="v-spread",
        worker_id="spread",
        distinct_ids=True,
        schemas=lambda n: [wide_schema(PER_SCHEMA, f"b{n}s{i}") for i in range(15)],
        status=413,
        refusal=("schemas_too_large", "skills.4.input_schema", "256 KiB"),
    ),
    Variation(
        name="900 KiB in one schema, distinct ids",
        account="v-single",
        worker_id="single",
        distinct_ids=True,
        schemas=lambda n: [wide_schema(900 * KIB, f"c{n}")],
        status=413,
        refusal=("schema_too_large", "skills.0.input_schema", "64 KiB"),
    ),
    Variation(
        name="at the limit (4 x 63 KiB), one id re-registering",
        account="v-again",
        worker_id="again",
        distinct_ids=False,
        schemas=lambda n: [wide_schema(PER_SCHEMA, f"d{n}s{i}") for i in range(4)],
        status=200,
    ),
    Variation(
        name="at the limit (4 x 63 KiB), distinct ids",
        account="v-many",
        worker_id="many",
        distinct_ids=True,
        schemas=lambda n: [wide_schema(PER_SCHEMA, f"e{n}s{i}") for i in range(4)],
        status=200,
    ),
]


def test_repeated_megabyte_registrations_are_refused_and_memory_stays_flat(
    cluster, namespace, operator
):
    pid = operator.process.pid
    assert pid is not None
    apis = {}
    for variation in VARIATIONS:
        account = variation.account
        create_account(cluster, namespace, account)
        apply(cluster, namespace, pool_manifest(account, replicas=0, serviceAccountName=account))
        apis[account] = Api(operator.url, create_token(cluster, namespace, account))
    register_when_known(apis["v-many"], "v-many", "warm-up", {"warm": OBJECT})

    def send(variation: Variation, n: int) -> httpx.Response:
        worker_id = f"{variation.worker_id}-{n}" if variation.distinct_ids else variation.worker_id
        body = body_of(variation.account, worker_id, variation.schemas(n))
        return apis[variation.account].post(REGISTER, body)

    # Warm up: one of each (the allocator, the schema compiler), not measured.
    for variation in VARIATIONS:
        assert send(variation, 1000).status_code == variation.status
    results = []
    for variation in VARIATIONS:
        before = rss_mib(pid)
        started = time.monotonic()
        for n in range(30):
            response = send(variation, n)
            if variation.refusal is None:
                assert response.status_code == 200, response.text[:300]
                continue
            code, field, limit = variation.refusal
            error = assert_error(response, variation.status, code, field)
            assert limit in error.message, error
        results.append((variation.name, before, rss_mib(pid), time.monotonic() - started))
    print("\noperator RSS over 30 registrations each:")
    for name, before, after, seconds in results:
        print(
            f"  {name}: {before:.1f} -> {after:.1f} MiB (+{after - before:.1f}) in {seconds:.1f} s"
        )
    for name, before, after, _ in results:
        assert after - before < 20, f"{name}: RSS grew {after - before:.1f} MiB"
    for api in apis.values():
        api.close()


# -- 5. a catastrophic regex --------------------------------------------------------------------

EVIL_PATTERN = "^(a+)+$"
EVIL_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string", "pattern": EVIL_PATTERN}},
    "required": ["text"],
}
#: More patterns that backtrack exponentially on a near miss, and a near miss for each.
NESTED_PATTERNS = {"x": "^(a|aa)+$", "y": "^(\\w+\\s?)*$", "z": "^(a|a)*$"}
NEAR_MISS = {"x": "a" * 40 + "!", "y": "a" * 40 + "!", "z": "a" * 40 + "!"}
#: Rounds of the attack (one a second or so, while the healthy job sleeps 20 s).
ATTACK_ROUNDS = 8


def nested_schema(round_: int) -> dict[str, Any]:
    """Distinct per round (its description), so that each registration compiles it anew."""
    properties = {k: {"type": "string", "pattern": p} for k, p in NESTED_PATTERNS.items()}
    return {"type": "object", "description": f"round {round_}", "properties": properties}


def phases(cluster, namespace: str) -> dict[str, str | None]:
    items = get(cluster, namespace, JOBS)["items"]
    return {j["metadata"]["name"]: (j.get("status") or {}).get("phase") for j in items}


@pytest.fixture
def second_namespace(cluster) -> Iterator[str]:
    name = cluster.create_namespace(f"t-{uuid.uuid4().hex[:10]}")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_a_catastrophic_regex_stalls_nothing(cluster, namespace, second_namespace, tmp_path):
    attacked, healthy = namespace, second_namespace
    with operator_for(cluster, [attacked, healthy], tmp_path / "operator.log") as operator:
        apply(cluster, healthy, pool_manifest("demo", replicas=1))
        apply(cluster, attacked, pool_manifest("evil", replicas=0))
        evil = Api(operator.url, create_token(cluster, attacked))
        # Linear-time regexes are accepted; what a backtracking engine needs is refused.
        register_when_known(evil, "evil", "evil-1", {"match": EVIL_SCHEMA})
        for skill, pattern, construct in [
            ("peek", "^(?=a)(a+)+$", "look-around"),
            ("echo", "^(a+)\\1$", "a back-reference"),
        ]:
            schema = {"type": "string", "pattern": pattern}
            error = assert_error(
                evil.post(REGISTER, register_body("evil", "evil-2", {skill: schema})),
                422,
                "invalid_schema",
                "skills.0.input_schema",
            )
            assert error.message == (
                f"the input_schema of skill {skill!r} cannot be used: #/pattern: the regex "
                f"{json.dumps(pattern)} uses {construct}, which the operator's linear-time "
                "regex engine does not support: rewrite the pattern without it"
            ), error
        wait_ready_workers(cluster, healthy, "demo", 1)

        with HealthProbe(operator.url) as probe:
            apply(cluster, healthy, job_manifest("healthy", "sleep", {"seconds": 20}))
            wait_phase(cluster, healthy, "healthy", ("Running",), timeout=30)
            attack_started = time.monotonic()
            evil_jobs: list[str] = []
            claimed: list[str] = []
            for round_ in range(ATTACK_ROUNDS):
                skills = {"match": EVIL_SCHEMA, f"nested{round_}": nested_schema(round_)}
                evil.register("evil-1", skills, pool="evil")
                texts = ["a" * 30 + "!"] * 4 + ["a" * 100_000 + "!"]
                jobs = {f"evil-{round_}-{i}": ("match", {"text": t}) for i, t in enumerate(texts)}
                jobs[f"evil-{round_}-nested"] = (f"nested{round_}", NEAR_MISS)
                apply(
                    cluster,
                    attacked,
                    *[job_manifest(n, sk, ps, pool="evil") for n, (sk, ps) in jobs.items()],
                )
                evil_jobs += jobs
                for _ in range(30):  # bounded: each claim waits 0.5 s at most
                    claimed += [a.job.name for a in evil.claim("evil-1", wait=0.5)]
                    now = phases(cluster, attacked)
                    if all(now.get(n) == "Failed" for n in jobs):
                        break
            apply(cluster, attacked, job_manifest("benign", "match", {"text": "aaaa"}, pool="evil"))
            [assignment] = evil.claim("evil-1", wait=10)
            claimed.append(assignment.job.name)
            assert_ack(evil.complete(assignment.attempt_id, {"matched": True}))
            attack_ended = time.monotonic()
            assert phases(cluster, healthy)["healthy"] == "Running", "the attack outlasted it"
            done = wait_phase(cluster, healthy, "healthy", ("Succeeded", "Failed"), timeout=60)
        assert claimed == ["benign"]
        assert wait_phase(cluster, attacked, "benign", ("Succeeded",))["attempt"] == 1
        for name in evil_jobs:
            status = job_status(cluster, attacked, name)
            assert status["phase"] == "Failed", status
            assert (status["error"]["type"], status["attempt"]) == ("InvalidParams", 0), status
            message = status["error"]["message"]
            if name.endswith("-nested"):
                for key in NESTED_PATTERNS:
                    assert f'spec.params.{key}: "{NEAR_MISS[key]}" does not match' in message, (
                        message
                    )
            else:
                assert "spec.params.text" in message, message
                assert f'does not match "{EVIL_PATTERN}"' in message, message
        assert len(evil_jobs) == ATTACK_ROUNDS * 6
        assert done["phase"] == "Succeeded", done
        assert done["result"] == {"slept": 20}
        assert (done["attempt"], [a["outcome"] for a in done["attempts"]]) == (1, ["Succeeded"])

        during = [p.seconds for p in probe.between(attack_started, attack_ended)]
        everything = probe.probes
        print(
            f"\n/healthz during the attack ({attack_ended - attack_started:.1f} s, {len(during)} "
            f"probes): p50 {percentile(during, 50) * 1000:.1f} ms, p99 "
            f"{percentile(during, 99) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms; over "
            f"the whole test ({len(everything)} probes): p99 "
            f"{percentile([p.seconds for p in everything], 99) * 1000:.1f} ms"
        )
        assert len(during) >= 10
        slow = [p for p in everything if p.status != 200 or p.seconds >= 1.0]
        assert slow == [], slow[:10]


# -- 6. error messages stay in their namespace --------------------------------------------------


def test_errors_never_name_another_namespace(cluster, namespace, second_namespace, tmp_path):
    mine, theirs = namespace, second_namespace
    with operator_for(cluster, [mine, theirs], tmp_path / "operator.log") as operator:
        apply(cluster, theirs, pool_manifest("their-pool", replicas=0))
        apply(cluster, mine, pool_manifest("demo", replicas=0))
        them = Api(operator.url, create_token(cluster, theirs))
        me = Api(operator.url, create_token(cluster, mine))
        register_when_known(them, "their-pool", "their-worker", {"secret-skill": OBJECT})
        register_when_known(me, "demo", "my-worker", {"mine": OBJECT})
        apply(
            cluster, theirs, job_manifest("their-secret-job", "secret-skill", {}, pool="their-pool")
        )
        [assignment] = them.claim("their-worker", wait=20)
        attempt = assignment.attempt_id
        before = job_state(cluster, theirs, "their-secret-job")
        secrets = [theirs, "their-secret-job", "their-pool", "secret-skill", assignment.job.uid]

        def same_answer(real: httpx.Response, real_name: str, fake: httpx.Response, fake_name: str):
            """Answers that differ only by the name the caller sent: no oracle."""
            assert real.status_code == fake.status_code, (real.text, fake.text)
            assert real.text.replace(real_name, "NAME") == fake.text.replace(fake_name, "NAME")

        ghost = f"{uuid.uuid4()}.1"
        for (path, body), (ghost_path, _) in zip(
            attempt_reports(attempt), attempt_reports(ghost), strict=True
        ):
            answer = me.post(path, body)
            error = assert_error(answer, 404, "unknown_attempt")
            assert error.message == f"no job in namespace {mine} has attempt {attempt!r}", error
            same_answer(answer, attempt, me.post(ghost_path, body), ghost)
            assert not [s for s in secrets[:4] if s in answer.text], answer.text
        for (path, body), (nobody_path, _) in zip(
            worker_requests("their-worker", attempt),
            worker_requests("nobody-here", attempt),
            strict=True,
        ):
            answer = me.post(path, body)
            assert_error(answer, 404, "worker_not_registered")
            same_answer(answer, "their-worker", me.post(nobody_path, body), "nobody-here")
            assert not [s for s in secrets if s in answer.text], answer.text
        answer = me.post(REGISTER, register_body("their-pool", "my-worker-2", {"mine": OBJECT}))
        assert_error(answer, 404, "unknown_pool", "pool")
        fake = me.post(REGISTER, register_body("no-such-pool", "my-worker-2", {"mine": OBJECT}))
        same_answer(answer, "their-pool", fake, "no-such-pool")
        assert theirs not in answer.text
        assert me.heartbeat("my-worker", [attempt]) == [
            Command(type=CommandType.abandon, attempt_id=attempt, reason=ABANDON)
        ]
        assert job_state(cluster, theirs, "their-secret-job") == before
        assert_ack(them.complete(attempt, {"theirs": True}))
        assert wait_phase(cluster, theirs, "their-secret-job", ("Succeeded",))["attempt"] == 1
        me.close()
        them.close()
