"""Which ClusterIP:port goes to which ready endpoints (pure: no I/O).

The process node's kube-proxy stand-in (``serviceproxy``) feeds this table with the
Services and ``discovery.k8s.io/v1`` EndpointSlices it watches, and asks it for the
routes: for every TCP port of every Service whose ClusterIP lies in the cluster's
Service CIDR, the ready endpoints (address, target port) that a connection may go to.
As kube-proxy does, an EndpointSlice belongs to the Service named by its
``kubernetes.io/service-name`` label, and a Service port matches the slice port of the
same name (both empty for a Service's single unnamed port).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class _Doc(BaseModel):
    """The fields of an API object the proxy reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Meta(_Doc):
    name: str
    namespace: str = ""
    uid: str = ""
    labels: dict[str, str] = Field(default_factory=dict)


class ServicePort(_Doc):
    name: str = ""
    port: int
    protocol: str = "TCP"


class ServiceSpec(_Doc):
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    ports: list[ServicePort] = Field(default_factory=list)


class Service(_Doc):
    metadata: Meta
    spec: ServiceSpec


class EndpointConditions(_Doc):
    #: None means unknown, which consumers treat as ready (the API's documented rule).
    ready: bool | None = None


class Endpoint(_Doc):
    addresses: list[str]
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)


class EndpointPort(_Doc):
    name: str | None = None
    port: int | None = None
    protocol: str = "TCP"


class EndpointSlice(_Doc):
    metadata: Meta
    address_type: str = Field(alias="addressType")
    endpoints: list[Endpoint] | None = None
    ports: list[EndpointPort] | None = None


@dataclass(frozen=True, order=True)
class Frontend:
    """Where the proxy listens: a Service's ClusterIP and port."""

    ip: str
    port: int


Backend = tuple[str, int]
Routes = dict[Frontend, list[Backend]]


def ready_backends(slices: list[EndpointSlice], port_name: str) -> list[Backend]:
    """The (address, port) pairs of the ready IPv4 endpoints for the named Service port,
    sorted and without duplicates (an endpoint may sit in two slices while they move)."""
    found: set[Backend] = set()
    for eps in slices:
        if eps.address_type != "IPv4":
            continue
        ports = [
            p.port
            for p in eps.ports or []
            if (p.name or "") == port_name and p.protocol == "TCP" and p.port is not None
        ]
        for endpoint in eps.endpoints or []:
            if endpoint.conditions.ready is False:
                continue
            found.update((address, port) for address in endpoint.addresses for port in ports)
    return sorted(found)


def service_routes(
    service: Service, slices: list[EndpointSlice], cidr: ipaddress.IPv4Network
) -> Routes:
    """The routes of one Service: none if its ClusterIP is missing, ``None`` (headless)
    or outside ``cidr``; one per TCP port otherwise, with its ready backends (maybe none)."""
    try:
        ip = ipaddress.IPv4Address(service.spec.cluster_ip or "")
    except ValueError:
        return {}
    if ip not in cidr:
        return {}
    return {
        Frontend(str(ip), port.port): ready_backends(slices, port.name)
        for port in service.spec.ports
        if port.protocol == "TCP"
    }


class ServiceTable:
    """Services and EndpointSlices as last seen, keyed so that a deletion known only by
    its namespace, name and uid (an informer's relist) still finds what it removes."""

    def __init__(self, cidr: ipaddress.IPv4Network) -> None:
        self.cidr = cidr
        self._services: dict[tuple[str, str], Service] = {}
        self._slices: dict[str, EndpointSlice] = {}

    def service_changed(self, doc: dict[str, Any]) -> None:
        service = Service.model_validate(doc)
        self._services[service.metadata.namespace, service.metadata.name] = service

    def service_deleted(self, doc: dict[str, Any]) -> None:
        meta = Meta.model_validate(doc["metadata"])
        self._services.pop((meta.namespace, meta.name), None)

    def slice_changed(self, doc: dict[str, Any]) -> None:
        eps = EndpointSlice.model_validate(doc)
        self._slices[eps.metadata.uid] = eps

    def slice_deleted(self, doc: dict[str, Any]) -> None:
        self._slices.pop(Meta.model_validate(doc["metadata"]).uid, None)

    def routes(self) -> Routes:
        by_service: defaultdict[tuple[str, str], list[EndpointSlice]] = defaultdict(list)
        for eps in self._slices.values():
            owner = eps.metadata.labels.get(SERVICE_NAME_LABEL)
            if owner:
                by_service[eps.metadata.namespace, owner].append(eps)
        routes: Routes = {}
        for key, service in self._services.items():
            routes.update(service_routes(service, by_service.get(key, []), self.cidr))
        return routes
