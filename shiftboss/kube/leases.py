"""``coordination.k8s.io/v1`` Leases, read and written with resourceVersion
preconditions: the leader-election Lease (``shiftboss.leader`` decides what to write)
and the shard claims (``shiftboss.shards``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, cast

import httpx

from shiftboss.kube.client import LEASES, ApiError, KubeClient

LEASE_NAME = "shiftboss-operator"


class LeaseConflict(Exception):
    """The Lease changed since it was read (or already exists): the write did nothing."""


class LeaseNamespaceMissing(LeaseConflict):
    """The Lease cannot be created: its namespace does not exist (yet)."""


class LeaseUnavailable(Exception):
    """The Lease could not be read or written now (API server error or unreachable)."""


class LeaseForbidden(LeaseUnavailable):
    """The API server refused our credentials or RBAC (401/403): retrying will not help."""


@dataclass(frozen=True)
class LeaseSpec:
    """The fields of a Lease's spec that leader election uses."""

    holder: str | None
    duration_seconds: int
    #: MicroTime strings, for people (``kubectl get lease -o yaml``); never compared.
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0


@dataclass(frozen=True)
class LeaseRecord:
    spec: LeaseSpec
    resource_version: str

    def changed_since(self, earlier: LeaseRecord) -> bool:
        """Whether the Lease was written since ``earlier`` was read: a holder that
        renews is alive.  (Liveness is judged by change seen locally, never by
        comparing ``renew_time`` with our own clock.)"""
        return (self.spec.holder, self.spec.renew_time, self.resource_version) != (
            earlier.spec.holder,
            earlier.spec.renew_time,
            earlier.resource_version,
        )


class LeaseStore(Protocol):
    """Where the Lease lives: the API server (``KubeLeaseStore``) or a fake in tests."""

    async def get(self) -> LeaseRecord | None:
        """The Lease, or None when there is none; ``LeaseUnavailable`` on failure."""
        ...

    async def create(self, spec: LeaseSpec) -> LeaseRecord:
        """Create the Lease; ``LeaseConflict`` when it already exists."""
        ...

    async def update(self, spec: LeaseSpec, resource_version: str) -> LeaseRecord:
        """Write ``spec`` if the Lease is still at ``resource_version``; else ``LeaseConflict``."""
        ...


class LeaseDirectory(Protocol):
    """Leases by namespace and name, for shard claims: the API server
    (``KubeLeaseDirectory``) or a fake in tests."""

    def store(self, namespace: str, name: str) -> LeaseStore:
        """The Lease ``namespace/name``."""
        ...

    async def list_named(self, name: str) -> dict[str, LeaseRecord]:
        """Every Lease called ``name``, by namespace; ``LeaseUnavailable`` on failure."""
        ...


class _LeaseSpecJson(TypedDict, total=False):
    holderIdentity: str | None
    leaseDurationSeconds: int
    acquireTime: str | None
    renewTime: str | None
    leaseTransitions: int


class KubeLeaseStore:
    """A ``coordination.k8s.io/v1`` Lease, written with resourceVersion preconditions."""

    def __init__(self, client: KubeClient, namespace: str, name: str = LEASE_NAME) -> None:
        self.client, self.namespace, self.name = client, namespace, name

    async def get(self) -> LeaseRecord | None:
        try:
            return _record(await self.client.get(LEASES.path(self.namespace, self.name)))
        except ApiError as exc:
            if exc.not_found:
                return None
            raise _unavailable(exc) from exc
        except httpx.HTTPError as exc:
            raise LeaseUnavailable(repr(exc)) from exc

    async def create(self, spec: LeaseSpec) -> LeaseRecord:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": _spec_json(spec),
        }
        return await self._write(self.client.create(LEASES.path(self.namespace), body), True)

    async def update(self, spec: LeaseSpec, resource_version: str) -> LeaseRecord:
        # A merge patch that carries metadata.resourceVersion is conditional on it, and
        # keeps the Lease's other fields (labels, newer spec fields) as they are.
        body = {"metadata": {"resourceVersion": resource_version}, "spec": _spec_json(spec)}
        return await self._write(self.client.patch(LEASES.path(self.namespace, self.name), body))

    async def _write(
        self, request: Awaitable[dict[str, Any]], creating: bool = False
    ) -> LeaseRecord:
        try:
            return _record(await request)
        except ApiError as exc:
            if exc.not_found and creating:  # only the namespace can be missing
                raise LeaseNamespaceMissing(str(exc)) from exc
            if exc.conflict or exc.not_found:  # changed, created or deleted meanwhile
                raise LeaseConflict(str(exc)) from exc
            raise _unavailable(exc) from exc
        except httpx.HTTPError as exc:
            raise LeaseUnavailable(repr(exc)) from exc


class KubeLeaseDirectory:
    """The Leases of every namespace, through one client."""

    #: Leases per page when listing across namespaces.
    PAGE = 500

    def __init__(self, client: KubeClient) -> None:
        self.client = client

    def store(self, namespace: str, name: str) -> KubeLeaseStore:
        return KubeLeaseStore(self.client, namespace, name)

    async def list_named(self, name: str) -> dict[str, LeaseRecord]:
        found: dict[str, LeaseRecord] = {}
        token: str | None = None
        try:
            while True:
                query: dict[str, Any] = {
                    "fieldSelector": f"metadata.name={name}",
                    "limit": self.PAGE,
                    "continue": token,
                }
                page = await self.client.get(LEASES.path(), **query)
                for lease in page.get("items", []):
                    found[lease["metadata"]["namespace"]] = _record(lease)
                token = (page.get("metadata") or {}).get("continue") or None
                if token is None:
                    return found
        except ApiError as exc:
            raise _unavailable(exc) from exc
        except httpx.HTTPError as exc:
            raise LeaseUnavailable(repr(exc)) from exc


def _unavailable(exc: ApiError) -> LeaseUnavailable:
    if exc.status in (401, 403):
        return LeaseForbidden(str(exc))
    return LeaseUnavailable(str(exc))


def _spec_json(spec: LeaseSpec) -> _LeaseSpecJson:
    # None is written as null, which a merge patch reads as "remove the field".
    return {
        "holderIdentity": spec.holder,
        "leaseDurationSeconds": spec.duration_seconds,
        "acquireTime": spec.acquire_time,
        "renewTime": spec.renew_time,
        "leaseTransitions": spec.transitions,
    }


def _record(lease: dict[str, Any]) -> LeaseRecord:
    spec = cast(_LeaseSpecJson, lease.get("spec") or {})
    return LeaseRecord(
        LeaseSpec(
            holder=spec.get("holderIdentity") or None,
            duration_seconds=spec.get("leaseDurationSeconds") or 0,
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=spec.get("leaseTransitions") or 0,
        ),
        resource_version=lease["metadata"]["resourceVersion"],
    )


def micro_time(value: dt.datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
