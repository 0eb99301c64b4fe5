"""Credentials for the Kubernetes API that stay fresh: fetched off the event loop, renewed
before they expire and after the API server refuses them.

A ``CredentialSource`` is a blocking function (it may read a rotating token file or run an
exec credential plugin, a subprocess) that returns ``Credentials`` with the times they
expire and should be renewed.  ``CredentialCache`` runs it in a thread of its own, one
fetch at a time however many requests are waiting, so that neither the event loop nor
the default executor is ever held by a slow plugin.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

log = logging.getLogger("shiftboss.kube")

#: Credentials are fetched at most this often, so that a plugin printing tokens that are
#: already expired, or credentials the server keeps refusing, cost one run a second, not
#: one per request.
REFETCH_INTERVAL = dt.timedelta(seconds=1)
#: After a failed fetch the next one waits this long (the old credentials are used meanwhile).
RETRY_AFTER_FAILURE = dt.timedelta(seconds=5)
#: How long a request waits for a fetch of expired credentials before it goes ahead with
#: what it has (and the API server decides).  Exec plugins answer in well under a second.
FETCH_TIMEOUT_SECONDS = 60.0


class KubeConfigError(Exception):
    """The kubeconfig or a credential plugin is missing or unusable; the message says
    which file or command, what went wrong, and how to fix it."""


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate and its private key, PEM-encoded."""

    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)


@dataclass(frozen=True)
class Credentials:
    """What authenticates requests; two are equal when they authenticate the same way."""

    #: The whole ``Authorization`` header value (``Bearer …`` or ``Basic …``), if any.
    authorization: str | None = field(default=None, repr=False)
    client_certificate: ClientCertificate | None = None
    #: When the API server stops accepting them (``None``: not known).
    expires_at: dt.datetime | None = field(default=None, compare=False)
    #: When to fetch new ones (``None``: never, they do not change).
    refresh_at: dt.datetime | None = field(default=None, compare=False)

    def usable(self, now: dt.datetime) -> bool:
        return self.expires_at is None or now < self.expires_at


CredentialSource = Callable[[], Credentials]
Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def renew_before(expires_at: dt.datetime, now: dt.datetime) -> dt.datetime:
    """When to renew credentials that expire at ``expires_at``: a fifth of their remaining
    lifetime ahead, at most five minutes ahead (a 1 h token at 55 min, a 20 s one at 16 s)."""
    margin = min((expires_at - now) / 5, dt.timedelta(minutes=5))
    return expires_at - max(margin, dt.timedelta(0))


class CredentialCache:
    """The current credentials of one kubeconfig user, renewed when due.

    ``get()`` answers at once while the credentials are valid, renewing them in the
    background once they are due; only expired ones make a request wait for the fetch.
    A fetch that fails is logged and the old credentials are used: the API server decides,
    and its 401 carries the reason (``last_error``).
    """

    def __init__(
        self,
        source: CredentialSource,
        first: Credentials,
        *,
        clock: Clock = _utc_now,
        on_change: Callable[[Credentials], None] | None = None,
    ) -> None:
        self._source, self._clock, self._on_change = source, clock, on_change
        self._current, self._fetched_at = first, clock()
        self._rejected: Credentials | None = None
        self._failed_at: dt.datetime | None = None
        self._fetching: asyncio.Task[Credentials] | None = None
        # A thread of its own: a hung plugin never holds the loop's default executor.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-credentials")
        #: Why the last fetch failed (cleared by the next one that succeeds).
        self.last_error: KubeConfigError | None = None

    @property
    def current(self) -> Credentials:
        return self._current

    async def get(self) -> Credentials:
        """The credentials to send now."""
        current, now = self._current, self._clock()
        due = current.refresh_at is not None and now >= current.refresh_at
        if not due or not self._may_refetch():
            return current
        if current.usable(now):
            self._fetch_in_background()
            return current
        try:
            return await self._shared_fetch()
        except KubeConfigError:
            return current  # already logged; the server answers 401 and says why

    async def renew(self) -> Credentials:
        """Fetch now, unless the credentials were fetched in the last ``REFETCH_INTERVAL``.
        Raises ``KubeConfigError`` when the fetch fails (or failed moments ago)."""
        if self._may_refetch():
            return await self._shared_fetch()
        if self._backing_off(self._clock()) and self.last_error is not None:
            raise self.last_error
        return self._current

    async def after_unauthorized(self, refused: Credentials) -> Credentials | None:
        """New credentials to retry a request with after the API server refused ``refused``
        (401), or ``None`` when there are none (nothing newer, or the fetch failed)."""
        if self._current is not refused:
            return self._current  # another request renewed them meanwhile
        try:
            renewed = await self.renew()
        except KubeConfigError:
            renewed = refused  # logged; the 401 will carry it (last_error)
        if renewed != refused:
            return renewed
        self._rejected = refused
        return None

    async def for_login(self) -> Credentials:
        """Credentials for a new session (Kopf logs in at start, and again after a 401 that
        renewing could not cure): the current ones, renewed if due.

        Raises ``KubeConfigError`` when the API server refused them and no newer ones are to
        be had (the fetch fails or gives the same), so that the caller retries later.
        """
        if self._is_refused():
            await self.renew()
        if self._is_refused():
            reason = f" ({self.last_error})" if self.last_error else ""
            raise KubeConfigError(
                f"the API server refuses these credentials (401 Unauthorized) and there are "
                f"no newer ones{reason}: renew them (log in again) or fix the kubeconfig user"
            )
        return await self.get()

    def _is_refused(self) -> bool:
        return self._rejected is not None and self._rejected == self._current

    def _backing_off(self, now: dt.datetime) -> bool:
        return self._failed_at is not None and now - self._failed_at < RETRY_AFTER_FAILURE

    def _may_refetch(self) -> bool:
        now = self._clock()
        return now - self._fetched_at >= REFETCH_INTERVAL and not self._backing_off(now)

    def _fetch_in_background(self) -> None:
        task = asyncio.ensure_future(self._shared_fetch())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # _fetch logs it

    async def _shared_fetch(self) -> Credentials:
        """Fetch once for every caller waiting at the same time."""
        loop = asyncio.get_running_loop()
        fetching = self._fetching
        if fetching is None or fetching.done() or fetching.get_loop() is not loop:
            fetching = self._fetching = loop.create_task(self._fetch())
        try:
            return await asyncio.wait_for(asyncio.shield(fetching), FETCH_TIMEOUT_SECONDS)
        except TimeoutError:
            error = KubeConfigError(
                f"fetching Kubernetes credentials took longer than {FETCH_TIMEOUT_SECONDS:.0f} s "
                "(a credential plugin that hangs?): run it by hand to see why"
            )
            self.last_error, self._failed_at = error, self._clock()
            raise error from None

    async def _fetch(self) -> Credentials:
        loop = asyncio.get_running_loop()
        try:
            fetched = await loop.run_in_executor(self._executor, self._source)
        except Exception as exc:
            # Whatever a loader or an auth provider raises, the running operator keeps its
            # old credentials and says why, rather than failing the request that asked.
            error = exc if isinstance(exc, KubeConfigError) else KubeConfigError(repr(exc))
            log.warning("cannot renew the Kubernetes credentials: %s", error)
            self.last_error, self._failed_at = error, self._clock()
            if error is exc:
                raise
            raise error from exc
        changed = fetched != self._current
        self._current, self._fetched_at = fetched, self._clock()
        self.last_error, self._failed_at = None, None
        if changed:
            self._rejected = None
            if self._on_change is not None:
                self._on_change(fetched)
        return fetched
