"""CredentialCache: when credentials are renewed, that a renewal never holds the event
loop, and what happens when it fails or the API server refuses them."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from kube_fakes import FakeClock, eventually

from shiftboss.kube.credentials import (
    CredentialCache,
    Credentials,
    KubeConfigError,
    renew_before,
)


class Source:
    """A credential source handing out ``Bearer token-<n>`` valid for ``lifetime`` s."""

    def __init__(self, clock: FakeClock, lifetime: float = 60.0) -> None:
        self.clock, self.lifetime = clock, lifetime
        self.calls = 0
        self.issued = 1  # the number of the last token handed out
        self.gate: threading.Event | None = None  # when set, a fetch waits for it
        self.error: str | None = None
        self.repeat = False  # hand out the last token again

    def __call__(self) -> Credentials:
        if self.gate is not None:
            assert self.gate.wait(5), "the test never opened the gate"
        self.calls += 1
        if self.error:
            raise KubeConfigError(self.error)
        if not self.repeat:
            self.issued += 1
        return self.token(self.issued)

    def token(self, n: int) -> Credentials:
        expires = self.clock() + dt.timedelta(seconds=self.lifetime)
        return Credentials(
            authorization=f"Bearer token-{n}",
            expires_at=expires,
            refresh_at=renew_before(expires, self.clock()),
        )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def source(clock: FakeClock) -> Source:
    return Source(clock)


@pytest.fixture
def cache(source: Source, clock: FakeClock) -> CredentialCache:
    return CredentialCache(source, source.token(1), clock=clock)


@pytest.mark.parametrize(
    ("lifetime", "renewed_after"),
    [(3600, 3300), (20, 16), (0, 0), (-5, -5)],
    ids=["1h-token-5min-ahead", "20s-token-a-fifth-ahead", "expiring-now", "expired"],
)
def test_renew_before(lifetime, renewed_after):
    now = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    expires = now + dt.timedelta(seconds=lifetime)
    assert renew_before(expires, now) == now + dt.timedelta(seconds=renewed_after)


async def test_valid_credentials_are_answered_without_a_fetch(cache, source, clock):
    clock.advance(40)  # due at 48 s
    assert [(await cache.get()).authorization for _ in range(3)] == ["Bearer token-1"] * 3
    assert source.calls == 0


async def test_due_credentials_are_renewed_in_the_background(cache, source, clock):
    clock.advance(50)  # due, still valid: answered at once with the old ones
    assert (await cache.get()).authorization == "Bearer token-1"
    await eventually(lambda: cache.current.authorization == "Bearer token-2")
    assert (await cache.get()).authorization == "Bearer token-2"
    assert source.calls == 1


async def test_expired_credentials_wait_for_the_fetch(cache, source, clock):
    clock.advance(61)
    assert (await cache.get()).authorization == "Bearer token-2"
    assert source.calls == 1


async def test_a_fetch_never_holds_the_event_loop(cache, source, clock):
    source.gate = threading.Event()
    clock.advance(61)
    waiting = asyncio.create_task(cache.get())
    ticks = 0
    for _ in range(5):  # the loop keeps running while the fetch is blocked in its thread
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 5 and not waiting.done()
    source.gate.set()
    assert (await waiting).authorization == "Bearer token-2"


async def test_many_waiters_share_one_fetch(cache, source, clock):
    source.gate = threading.Event()
    clock.advance(61)
    waiting = [asyncio.create_task(cache.get()) for _ in range(20)]
    await asyncio.sleep(0.05)
    source.gate.set()
    answers = await asyncio.gather(*waiting)
    assert {a.authorization for a in answers} == {"Bearer token-2"}
    assert source.calls == 1


async def test_a_failed_fetch_keeps_the_old_credentials_and_says_why(cache, source, clock):
    source.error = "exec plugin `get-token` failed: expired SSO session"
    clock.advance(61)
    assert (await cache.get()).authorization == "Bearer token-1"  # the server will decide
    assert "expired SSO session" in str(cache.last_error)
    assert (await cache.get()).authorization == "Bearer token-1"
    assert source.calls == 1, "a failing source is not run again within RETRY_AFTER_FAILURE"
    clock.advance(5)
    source.error = None
    assert (await cache.get()).authorization == "Bearer token-2"
    assert cache.last_error is None


async def test_after_a_401_the_credentials_are_renewed_once(cache, source, clock):
    refused = cache.current
    clock.advance(10)
    renewed = await cache.after_unauthorized(refused)
    assert renewed is not None and renewed.authorization == "Bearer token-2"
    # Another request refused with the same old credentials gets the new ones, no fetch.
    assert await cache.after_unauthorized(refused) is renewed
    assert source.calls == 1


async def test_after_a_401_nothing_newer_means_no_retry_and_login_fails(cache, source, clock):
    source.repeat = True  # the source hands out the refused token again
    clock.advance(10)
    assert await cache.after_unauthorized(cache.current) is None
    with pytest.raises(KubeConfigError, match="refuses these credentials"):
        await cache.for_login()
    source.repeat = False
    clock.advance(1)
    assert (await cache.for_login()).authorization == "Bearer token-2"


async def test_refused_credentials_fetched_moments_ago_are_not_fetched_again(cache, source, clock):
    clock.advance(0.5)
    assert await cache.after_unauthorized(cache.current) is None
    with pytest.raises(KubeConfigError, match="refuses these credentials"):
        await cache.for_login()
    assert source.calls == 0


async def test_login_takes_the_current_credentials_without_a_fetch(cache, source, clock):
    clock.advance(10)
    assert (await cache.for_login()).authorization == "Bearer token-1"
    assert source.calls == 0


async def test_login_after_a_failed_renewal_fails_with_the_source_error(cache, source, clock):
    source.error = "exec plugin `get-token` failed: no such profile"
    clock.advance(10)
    assert await cache.after_unauthorized(cache.current) is None
    with pytest.raises(KubeConfigError, match="no such profile"):
        await cache.for_login()
    with pytest.raises(KubeConfigError, match="no such profile"):
        await cache.renew()  # within the back-off: the same error, no second run
    assert source.calls == 1


async def test_renew_fetches_at_most_once_per_interval(cache, source, clock):
    clock.advance(0.5)
    assert (await cache.renew()).authorization == "Bearer token-1"
    clock.advance(0.5)
    assert (await cache.renew()).authorization == "Bearer token-2"
    assert (await cache.renew()).authorization == "Bearer token-2"
    assert source.calls == 1


async def test_listeners_hear_of_changed_credentials_only(source, clock):
    heard: list[str | None] = []
    cache = CredentialCache(
        source, source.token(1), clock=clock, on_change=lambda c: heard.append(c.authorization)
    )
    clock.advance(10)
    await cache.renew()
    source.repeat = True
    clock.advance(10)
    await cache.renew()
    assert heard == ["Bearer token-2"]


async def test_an_unexpected_error_in_a_source_is_reported_not_raised_to_requests(clock):
    def broken() -> Credentials:
        raise KeyError("id-token")  # e.g. an auth provider's malformed config

    expired = Credentials(authorization="Bearer old", refresh_at=clock(), expires_at=clock())
    cache = CredentialCache(broken, expired, clock=clock)
    clock.advance(2)
    assert (await cache.get()).authorization == "Bearer old"
    assert isinstance(cache.last_error, KubeConfigError)
    assert "KeyError('id-token')" in str(cache.last_error)
