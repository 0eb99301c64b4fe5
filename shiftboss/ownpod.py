"""Which pod this operator replica is, and the label that routes workers to the leader.

In a cluster (the Helm chart) the downward API names each replica's pod in
``SHIFTBOSS_POD_NAME`` and ``SHIFTBOSS_POD_NAMESPACE``.  The worker API Service selects
the operator's pods *and* ``shiftboss.io/leader: "true"``, which only the leader
carries: standbys answer ``/readyz`` 200 (they are ready to take over, so the Deployment
is Available), so readiness alone cannot keep workers away from them.

``LeaderLabel`` keeps that label on the replica's own pod as leader election decides:
removed at start (a restarted container of a former leader still carries it), set on
acquiring the Lease, removed on losing or releasing it.  It changes the label with a JSON
merge patch on ``pods/<name>`` (RBAC: ``patch`` on pods in the pod's namespace); a failed
patch is logged and retried with backoff, never fatal: a leader without its label
still leads, it is only unreachable through the Service until the patch lands.

A killed process cannot remove its label: its pod keeps it until the container restarts
(which removes it at start) or the pod is deleted.  On a kubelet the dead container's pod
is not Ready meanwhile, so the Service leaves it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shiftboss.kube.client import PODS, ApiError
from shiftboss.settings import DNS_LABEL

log = logging.getLogger("shiftboss.leader")

LEADER_LABEL = "shiftboss.io/leader"
POD_NAME_ENV = "SHIFTBOSS_POD_NAME"
POD_NAMESPACE_ENV = "SHIFTBOSS_POD_NAMESPACE"


class OwnPodError(ValueError):
    """``SHIFTBOSS_POD_NAME``/``SHIFTBOSS_POD_NAMESPACE`` are set wrongly."""


class PodRef(BaseModel):
    """This replica's own pod."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$")
    namespace: str = Field(min_length=1, max_length=63, pattern=f"^{DNS_LABEL.pattern}$")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PodRef | None:
        """The pod named by the environment; None when neither variable is set (a
        replica run outside a pod, e.g. from a checkout)."""
        name = environ.get(POD_NAME_ENV, "").strip()
        namespace = environ.get(POD_NAMESPACE_ENV, "").strip()
        if not name and not namespace:
            return None
        if not name or not namespace:
            raise OwnPodError(
                f"{POD_NAME_ENV} and {POD_NAMESPACE_ENV} go together (the downward API's "
                "metadata.name and metadata.namespace): set both or neither"
            )
        try:
            return cls(name=name, namespace=namespace)
        except ValidationError as exc:
            raise OwnPodError(
                f"{POD_NAME_ENV}={name!r}, {POD_NAMESPACE_ENV}={namespace!r}: not a pod's "
                f"name and namespace ({exc.error_count()} errors)"
            ) from exc

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def leader_patch(leading: bool) -> dict[str, Any]:
    """The merge patch that sets (``"true"``) or removes (``null``) the leader label."""
    return {"metadata": {"labels": {LEADER_LABEL: "true" if leading else None}}}


def failure_message(pod: PodRef, leading: bool, exc: Exception) -> str:
    """Why the label could not be changed, and what to do about it."""
    what = f"cannot {'set' if leading else 'remove'} {LEADER_LABEL} on pod {pod}"
    if isinstance(exc, ApiError) and exc.status == 403:
        return (
            f"{what}: forbidden; the operator's ServiceAccount needs the RBAC rule "
            f'apiGroups [""], resources [pods], verbs [patch] in namespace {pod.namespace} '
            f"(the worker API Service routes only to the labelled leader): {exc.message}"
        )
    if isinstance(exc, ApiError) and exc.status == 404:
        return (
            f"{what}: no such pod; {POD_NAME_ENV} and {POD_NAMESPACE_ENV} must name this "
            "replica's own pod (the downward API's metadata.name and metadata.namespace)"
        )
    return f"{what}: {str(exc) or type(exc).__name__}"


@dataclass(frozen=True)
class Backoff:
    """Delays between failed attempts: ``initial`` doubling up to ``cap`` seconds."""

    initial: float = 0.5
    cap: float = 30.0

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1 is the first)."""
        return min(self.cap, self.initial * 2.0 ** min(failures - 1, 32))


class PodPatcher(Protocol):
    """What ``LeaderLabel`` needs of ``KubeClient``: a merge patch."""

    async def patch(self, path: str, body: Any) -> dict[str, Any]: ...


class LeaderLabel:
    """Keeps ``shiftboss.io/leader`` on ``pod`` as last ``want``-ed, in a background task
    run inside ``async with``; without a pod (or a client) it does nothing.

    Starts out wanting the label removed, so entering the context removes it.
    """

    def __init__(
        self,
        pods: PodPatcher | None,
        pod: PodRef | None,
        *,
        backoff: Backoff = Backoff(),
        attempt_timeout: float = 10.0,
    ) -> None:
        self.pods, self.pod = pods, pod
        self.backoff, self.attempt_timeout = backoff, attempt_timeout
        self._wanted = False
        #: The label as last written (None: unknown: at start, in flight, after a failure).
        self._applied: bool | None = None
        self._failures = 0
        self._attempted = asyncio.Condition()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, pods: PodPatcher, environ: Mapping[str, str]) -> LeaderLabel:
        """For the pod the environment names, if any; ``OwnPodError`` when misconfigured."""
        return cls(pods, PodRef.from_env(environ))

    def want(self, leading: bool) -> None:
        """Set (True) or remove the label; a change is tried at once, even in a backoff."""
        if leading != self._wanted:
            self._wanted = leading
            self._wake.set()

    async def settle(self, timeout: float) -> bool:
        """Wait until the label is as wanted, or the next attempt failed, or ``timeout``.

        Returns whether it is as wanted: a caller orders its steps after the label when it
        can, and goes on without it when the API server refuses or is slow.
        """
        if self._task is None:
            return True
        failures = self._failures
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout), self._attempted:
                await self._attempted.wait_for(
                    lambda: self._applied == self._wanted or self._failures != failures
                )
        return self._applied == self._wanted

    async def __aenter__(self) -> LeaderLabel:
        if self.pods is not None and self.pod is not None:
            self._task = asyncio.create_task(self._sync(self.pods, self.pod), name="leader label")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sync(self, pods: PodPatcher, pod: PodRef) -> None:
        in_a_row = 0
        while True:
            if self._wanted == self._applied:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._wake.clear()  # a change of mind from now on cuts a backoff short
            wanted = self._wanted
            self._applied = None  # unknown until answered: a timed-out patch may land
            try:
                async with asyncio.timeout(self.attempt_timeout):
                    await pods.patch(PODS.path(pod.namespace, pod.name), leader_patch(wanted))
            except Exception as exc:  # never fatal: a leader without its label still leads
                in_a_row += 1
                delay = self.backoff.delay(in_a_row)
                log.warning("%s; retrying in %.1fs", failure_message(pod, wanted, exc), delay)
                await self._note(failed=True)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                continue
            in_a_row = 0
            self._applied = wanted
            log.info("%s %s on pod %s", "set" if wanted else "removed", LEADER_LABEL, pod)
            await self._note(failed=False)

    async def _note(self, *, failed: bool) -> None:
        async with self._attempted:
            if failed:
                self._failures += 1
            self._attempted.notify_all()
