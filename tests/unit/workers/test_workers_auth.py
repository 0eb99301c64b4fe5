"""Worker authentication (``shiftboss.workers.auth``) against a fake API server.

What is measured is what a TokenReview costs: ``FakeKube.reviews`` counts them, time is a
``FakeClock`` moved by hand.
"""

from __future__ import annotations

import asyncio

import pytest
from auth_fakes import NOW, FakeClock, FakeKube, make_token

from shiftboss.kube.client import ApiError
from shiftboss.workers.auth import (
    Authenticator,
    AuthError,
    AuthSettings,
    RateLimited,
    WorkerIdentity,
)

PEER = "10.0.0.7"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def auth(kube: FakeKube, clock: FakeClock) -> Authenticator:
    return Authenticator(kube, clock=clock.monotonic, wall_clock=clock.wall)


async def outcome(auth: Authenticator, token: str | None, peer: str = PEER) -> str:
    """What happened to one request: 'ok', 'refused' (401) or 'limited' (429)."""
    try:
        await auth.identify(None if token is None else f"Bearer {token}", peer=peer)
    except RateLimited:
        return "limited"
    except AuthError:
        return "refused"
    return "ok"


async def outcomes(auth: Authenticator, requests: list[tuple[str | None, str]]) -> dict[str, int]:
    counts = {"ok": 0, "refused": 0, "limited": 0}
    for token, peer in requests:
        counts[await outcome(auth, token, peer)] += 1
    return counts


# -- accepted tokens ------------------------------------------------------------------------


async def test_a_token_is_reviewed_once_then_served_from_the_cache(auth, kube):
    token = kube.grant(make_token())

    identities = [await auth.identify(f"Bearer {token}", peer=PEER) for _ in range(10)]

    assert kube.reviews == 1
    assert set(identities) == {WorkerIdentity("team-a", "worker")}
    assert identities[0].owner == "sa:team-a/worker"


async def test_an_accepted_token_is_reviewed_again_after_ten_minutes(auth, kube, clock):
    token = kube.grant(make_token(expires=NOW + 3600))
    await auth.identify(f"Bearer {token}", peer=PEER)

    clock.advance(599)
    await auth.identify(f"Bearer {token}", peer=PEER)
    assert kube.reviews == 1
    clock.advance(2)
    await auth.identify(f"Bearer {token}", peer=PEER)
    assert kube.reviews == 2


async def test_a_token_close_to_expiry_is_trusted_until_30_s_before_it(auth, kube, clock):
    token = kube.grant(make_token(expires=NOW + 100))
    await auth.identify(f"Bearer {token}", peer=PEER)

    clock.advance(69)
    await auth.identify(f"Bearer {token}", peer=PEER)
    assert kube.reviews == 1
    clock.advance(2)
    await auth.identify(f"Bearer {token}", peer=PEER)
    assert kube.reviews == 2


async def test_the_bearer_scheme_is_case_insensitive(auth, kube):
    token = kube.grant(make_token())

    assert await auth.identify(f"bearer {token}", peer=PEER) == WorkerIdentity("team-a", "worker")


# -- junk costs no review -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "problem"),
    [
        (None, "missing or malformed bearer token"),
        ("Basic dXNlcjpwYXNz", "missing or malformed bearer token"),
        ("Bearer " + "a" * 20_000, "at most 16384 bytes"),
        ("Bearer tok\u00e9n", "printable ASCII"),
        ("Bearer not-a-jwt", "not a JWT (three base64url segments"),
        ("Bearer a.b.c.d", "not a JWT"),
        ("Bearer a+b.c/d.e", "not a JWT"),
        ("Bearer e30.e30.c2ln", "names no signing 'alg'"),
        ("Bearer " + make_token(alg="none"), "names no signing 'alg'"),
        ("Bearer !!!.e30.c2ln", "not a JWT"),
        ("Bearer eyJhbGci.e30.c2ln", "header is not base64url-encoded JSON"),
        (
            "Bearer " + make_token(audiences=["https://kubernetes.default.svc.cluster.local"]),
            "kubectl create token <service account> --audience shiftboss",
        ),
        ("Bearer " + make_token(expires=NOW - 61), "has expired: request a new one"),
        ("Bearer " + make_token(subject="admin"), "'admin' is not a service account"),
        (
            "Bearer " + make_token(subject="system:serviceaccount:team-a"),
            "is not a service account",
        ),
    ],
)
async def test_a_malformed_token_is_refused_without_a_review(auth, kube, authorization, problem):
    with pytest.raises(AuthError) as refused:
        await auth.identify(authorization, peer=PEER)

    assert type(refused.value) is AuthError
    assert problem in str(refused.value)
    assert kube.reviews == 0


async def test_a_token_expired_within_the_clock_skew_is_still_reviewed(auth, kube):
    token = kube.grant(make_token(expires=NOW - 30))

    await auth.identify(f"Bearer {token}", peer=PEER)

    assert kube.reviews == 1


async def test_1000_junk_requests_from_one_address_cost_no_review(auth, kube):
    junk = [None, "not-a-jwt", make_token(audiences=["other"]), make_token(expires=NOW - 3600)]

    counts = await outcomes(auth, [(junk[i % len(junk)], PEER) for i in range(1000)])

    assert counts == {"ok": 0, "refused": 5, "limited": 995}
    assert kube.reviews == 0


async def test_1000_forged_tokens_from_one_address_cost_a_handful_of_reviews(auth, kube, clock):
    """Well-shaped, unsigned: each passes the pre-check, so only the rate limit helps."""
    counts = {"ok": 0, "refused": 0, "limited": 0}
    for _ in range(1000):  # one every 10 ms, the last at 9.99 s
        counts[await outcome(auth, make_token())] += 1
        clock.advance(0.01)

    assert kube.reviews == 5 + 9  # the burst, then one per second
    assert counts == {"ok": 0, "refused": 14, "limited": 986}


async def test_one_forged_token_from_1000_addresses_costs_one_review_per_30_s(auth, kube, clock):
    token = make_token()

    counts = await outcomes(auth, [(token, f"10.1.{i // 256}.{i % 256}") for i in range(1000)])
    assert counts == {"ok": 0, "refused": 1000, "limited": 0}
    assert kube.reviews == 1

    clock.advance(29)
    await outcome(auth, token)
    assert kube.reviews == 1
    clock.advance(2)
    await outcome(auth, token)
    assert kube.reviews == 2


async def test_forged_tokens_from_many_addresses_are_capped_by_the_review_budget(kube, clock):
    auth = Authenticator(
        kube,
        settings=AuthSettings(review_burst=20, reviews_per_second=2),
        clock=clock.monotonic,
        wall_clock=clock.wall,
    )

    counts = await outcomes(
        auth, [(make_token(), f"10.1.{i // 256}.{i % 256}") for i in range(1000)]
    )

    assert kube.reviews == 20
    assert counts == {"ok": 0, "refused": 20, "limited": 980}


async def test_concurrent_forged_tokens_from_one_address_start_only_a_burst_of_reviews(auth, kube):
    kube.gate = asyncio.Event()
    requests = [asyncio.create_task(outcome(auth, make_token())) for _ in range(100)]
    await asyncio.sleep(0.01)

    assert kube.reviews == 5  # the others were limited before any answer came back
    kube.gate.set()
    results = await asyncio.gather(*requests)
    assert results.count("refused") == 5
    assert results.count("limited") == 95


async def test_concurrent_requests_with_one_token_share_one_review(auth, kube):
    token = kube.grant(make_token())
    kube.gate = asyncio.Event()
    requests = [
        asyncio.create_task(auth.identify(f"Bearer {token}", peer=f"10.0.0.{i}")) for i in range(50)
    ]
    await asyncio.sleep(0.01)
    kube.gate.set()

    identities = await asyncio.gather(*requests)

    assert kube.reviews == 1
    assert set(identities) == {WorkerIdentity("team-a", "worker")}


async def test_a_caller_that_goes_away_does_not_cancel_the_shared_review(auth, kube):
    token = kube.grant(make_token())
    kube.gate = asyncio.Event()
    first = asyncio.create_task(auth.identify(f"Bearer {token}", peer=PEER))
    second = asyncio.create_task(auth.identify(f"Bearer {token}", peer=PEER))
    await asyncio.sleep(0.01)

    first.cancel()
    kube.gate.set()

    assert await second == WorkerIdentity("team-a", "worker")
    with pytest.raises(asyncio.CancelledError):
        await first
    assert kube.reviews == 1


# -- the rate limit per address -------------------------------------------------------------


async def test_rate_limited_says_when_to_retry_and_lets_one_through_then(auth, clock):
    for _ in range(5):
        assert await outcome(auth, "junk") == "refused"

    with pytest.raises(RateLimited) as limited:
        await auth.identify("Bearer junk", peer=PEER)
    assert limited.value.retry_after == pytest.approx(1.0)
    assert "retry in 1 s" in str(limited.value)

    clock.advance(1.0)
    assert await outcome(auth, "junk") == "refused"
    assert await outcome(auth, "junk") == "limited"


async def test_successful_reviews_give_their_address_its_token_back(auth, kube):
    """Good workers behind one address are not held back by a few failures there."""
    for _ in range(4):
        assert await outcome(auth, "junk") == "refused"

    good = [
        kube.grant(make_token(service_account=f"w{i}"), service_account=f"w{i}") for i in range(20)
    ]
    assert [await outcome(auth, token) for token in good] == ["ok"] * 20

    assert await outcome(auth, "junk") == "refused"
    assert await outcome(auth, "junk") == "limited"


async def test_a_cached_identity_is_served_while_its_address_is_rate_limited(auth, kube):
    token = kube.grant(make_token())
    await auth.identify(f"Bearer {token}", peer=PEER)
    while await outcome(auth, "junk") != "limited":
        pass

    assert await outcome(auth, token) == "ok"


async def test_addresses_are_limited_separately(auth):
    for _ in range(6):
        await outcome(auth, "junk", peer="10.0.0.1")

    assert await outcome(auth, "junk", peer="10.0.0.1") == "limited"
    assert await outcome(auth, "junk", peer="10.0.0.2") == "refused"


async def test_an_api_server_outage_is_not_held_against_the_caller(auth, kube):
    token = kube.grant(make_token())
    kube.failures = [ApiError(503, "ServiceUnavailable", "etcd is away") for _ in range(10)]

    for _ in range(10):
        with pytest.raises(ApiError):
            await auth.identify(f"Bearer {token}", peer=PEER)

    assert await auth.identify(f"Bearer {token}", peer=PEER) == WorkerIdentity("team-a", "worker")
    assert kube.reviews == 11


# -- refused tokens -------------------------------------------------------------------------


async def test_a_refused_token_is_remembered_for_30_s(auth, kube, clock):
    token = make_token()
    assert await outcome(auth, token) == "refused"

    kube.grant(token)  # say the API server was confused for a moment
    clock.advance(29)
    assert await outcome(auth, token) == "refused"
    assert kube.reviews == 1

    clock.advance(2)
    assert await outcome(auth, token) == "ok"
    assert kube.reviews == 2


async def test_the_refusal_says_why_and_how_to_fix_it(auth):
    with pytest.raises(
        AuthError, match=r"token rejected: .*invalid bearer token.*audience 'shiftboss'"
    ):
        await auth.identify(f"Bearer {make_token()}", peer=PEER)


@pytest.mark.parametrize("answered", [[], ["https://kubernetes.default.svc.cluster.local"]])
async def test_a_review_that_does_not_confirm_our_audience_is_refused(auth, kube, answered):
    token = kube.grant(make_token(), audiences=answered, ignores_audiences=True)

    with pytest.raises(
        AuthError, match=r"did not confirm audience 'shiftboss'.*--audience shiftboss"
    ):
        await auth.identify(f"Bearer {token}", peer=PEER)
    assert await outcome(auth, token, peer="10.0.0.8") == "refused"
    assert kube.reviews == 1


async def test_a_user_that_is_not_a_service_account_is_refused(auth, kube):
    token = make_token()
    kube.grant(token)
    kube.grants[token].username = "system:node:node-1"

    with pytest.raises(AuthError, match="'system:node:node-1' is not a service account"):
        await auth.identify(f"Bearer {token}", peer=PEER)


# -- tokens bound to a pod ------------------------------------------------------------------


def pod_token(kube: FakeKube, name: str = "pool-a-x1", uid: str = "uid-1") -> str:
    kube.add_pod("team-a", name, uid)
    return kube.grant(make_token(), pod=(name, uid))


async def test_a_pod_token_names_its_pod_its_pool_and_its_owner(auth, kube):
    token = pod_token(kube)

    identity = await auth.identify(f"Bearer {token}", peer=PEER)

    assert identity == WorkerIdentity("team-a", "worker", "pool-a-x1", "uid-1", "pool-a")
    assert identity.owner == "pod:team-a/uid-1"


async def test_a_deleted_pods_token_is_refused_once_the_pod_is_forgotten(auth, kube):
    token = pod_token(kube)
    await auth.identify(f"Bearer {token}", peer=PEER)
    del kube.pods[("team-a", "pool-a-x1")]
    assert await outcome(auth, token) == "ok"  # cached: only forget_pod ends that

    assert auth.forget_pod("team-a", "pool-a-x1") == 1

    with pytest.raises(AuthError, match="invalid bearer token, pod not found"):
        await auth.identify(f"Bearer {token}", peer=PEER)
    assert kube.reviews == 2
    assert await outcome(auth, token, peer="10.0.0.8") == "refused"
    assert kube.reviews == 2


async def test_forget_pod_keeps_other_pods_and_service_accounts(auth, kube):
    other_pod = pod_token(kube, "pool-a-x2", "uid-2")
    same_name_elsewhere = make_token(namespace="team-b")
    kube.add_pod("team-b", "pool-a-x1", "uid-9")
    kube.grant(same_name_elsewhere, namespace="team-b", pod=("pool-a-x1", "uid-9"))
    external = kube.grant(make_token())
    gone = pod_token(kube)
    for token in (other_pod, same_name_elsewhere, external, gone):
        await auth.identify(f"Bearer {token}", peer=PEER)

    assert auth.forget_pod("team-a", "pool-a-x1") == 1

    for token in (other_pod, same_name_elsewhere, external):
        await auth.identify(f"Bearer {token}", peer=PEER)
    assert kube.reviews == 4


async def test_a_pod_forgotten_during_its_review_is_not_cached(auth, kube):
    token = pod_token(kube)
    kube.gate = asyncio.Event()
    request = asyncio.create_task(auth.identify(f"Bearer {token}", peer=PEER))
    await asyncio.sleep(0.01)

    auth.forget_pod("team-a", "pool-a-x1")
    kube.gate.set()
    await request
    kube.gate = None
    await auth.identify(f"Bearer {token}", peer=PEER)

    assert kube.reviews == 2


async def test_a_replaced_pods_token_is_refused(auth, kube):
    token = pod_token(kube)
    kube.add_pod("team-a", "pool-a-x1", "uid-2")  # same name, a new pod

    with pytest.raises(AuthError, match="pod team-a/pool-a-x1 was replaced"):
        await auth.identify(f"Bearer {token}", peer=PEER)


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
async def test_an_ended_pods_token_is_refused(auth, kube, phase):
    token = pod_token(kube)
    kube.pods[("team-a", "pool-a-x1")]["status"]["phase"] = phase

    with pytest.raises(AuthError, match="pod team-a/pool-a-x1 has ended"):
        await auth.identify(f"Bearer {token}", peer=PEER)


async def test_a_pod_gone_between_review_and_lookup_is_refused(auth, kube):
    token = pod_token(kube)
    lookup = kube.get

    async def vanished(path: str):
        del kube.pods[("team-a", "pool-a-x1")]
        return await lookup(path)

    kube.get = vanished  # type: ignore[method-assign]

    with pytest.raises(AuthError, match="pod team-a/pool-a-x1 no longer exists"):
        await auth.identify(f"Bearer {token}", peer=PEER)
