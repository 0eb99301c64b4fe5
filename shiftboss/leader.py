"""Leader election with a ``coordination.k8s.io`` Lease, for running several replicas.

Only the holder of the Lease runs the operator (watches, dispatcher, worker API); the
others wait to take over.  A leader that cannot renew in time stops, so two replicas
never dispatch at once for longer than one lease.  (Kopf's own peering pauses Kopf's
watches but not the worker API that Shiftboss serves beside them, so it is not used.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass

import httpx

from shiftboss.kube.client import LEASES, ApiError, KubeClient

log = logging.getLogger("shiftboss.leader")


class LostLeadership(Exception):
    """The lease could not be renewed in time; this replica must stop."""


@dataclass(frozen=True)
class ElectionSettings:
    namespace: str
    name: str = "shiftboss-operator"
    #: Followers take over after the leader missed renewing for this long.
    lease_seconds: int = 15
    #: The leader renews this often; followers retry this often.
    retry_seconds: float = 2.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _micro(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class LeaderElector:
    def __init__(self, client: KubeClient, settings: ElectionSettings, identity: str) -> None:
        self.client, self.settings, self.identity = client, settings, identity
        self._path = LEASES.path(settings.namespace, settings.name)

    async def acquire(self) -> None:
        """Wait until this replica holds the lease."""
        announced = False
        while not await self._try():
            if not announced:
                log.info(
                    "waiting to become the leader (lease %s/%s)",
                    self.settings.namespace,
                    self.settings.name,
                )
                announced = True
            await asyncio.sleep(self.settings.retry_seconds)
        log.info("became the leader as %s", self.identity)

    async def keep(self) -> None:
        """Renew the lease until cancelled; ``LostLeadership`` if it cannot."""
        last_renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.retry_seconds)
            try:
                if await self._try():
                    last_renewed = time.monotonic()
                    continue
                raise LostLeadership(f"another replica holds lease {self.settings.name}")
            except (ApiError, httpx.HTTPError) as exc:
                log.warning("could not renew the leader lease: %s", exc)
            # Give up a little before the lease runs out, so followers never overlap us.
            if time.monotonic() - last_renewed > self.settings.lease_seconds * 0.8:
                raise LostLeadership("could not renew the leader lease in time")

    async def release(self) -> None:
        """Hand over at once on a clean stop (followers need not wait for expiry)."""
        try:
            lease = await self.client.get(self._path)
            if lease["spec"].get("holderIdentity") == self.identity:
                lease["spec"]["holderIdentity"] = None
                lease["spec"]["leaseDurationSeconds"] = 1
                await self.client.replace(self._path, lease)
        except (ApiError, httpx.HTTPError) as exc:
            log.warning("could not release the leader lease: %s", exc)

    async def _try(self) -> bool:
        """Take or renew the lease; True when we hold it afterwards."""
        now = _now()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.settings.lease_seconds,
            "renewTime": _micro(now),
        }
        try:
            lease = await self.client.get(self._path)
        except ApiError as exc:
            if not exc.not_found:
                raise
            try:
                await self.client.create(
                    LEASES.path(self.settings.namespace),
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": "Lease",
                        "metadata": {
                            "name": self.settings.name,
                            "namespace": self.settings.namespace,
                        },
                        "spec": {**spec, "acquireTime": _micro(now)},
                    },
                )
                return True
            except ApiError as create_error:
                if create_error.already_exists:
                    return False
                raise
        held = lease.get("spec") or {}
        holder = held.get("holderIdentity")
        if holder and holder != self.identity and held.get("renewTime"):
            expires = _parse(held["renewTime"]) + dt.timedelta(
                seconds=held.get("leaseDurationSeconds", 15)
            )
            if expires > now:
                return False
        if holder != self.identity:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = held.get("leaseTransitions", 0) + 1
        lease["spec"] = {**held, **spec}
        try:
            await self.client.replace(self._path, lease)  # carries resourceVersion: a race loses
        except ApiError as exc:
            if exc.conflict:
                return False
            raise
        return True
