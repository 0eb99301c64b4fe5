"""Which ClusterIP:port goes to which ready pods (pure: no I/O).

On a real cluster the endpointslice controller turns a Service's selector and its pods'
readiness into EndpointSlices, and kube-proxy routes ClusterIP:port to the ready
endpoints in them.  Here the API server refuses EndpointSlices (and Endpoints) whose
addresses are loopback, and every pod IP is, so the process node does both jobs from
what it watches: this table holds the Services and pods, ``routes()`` says, for every
TCP port of every Service whose ClusterIP lies in the cluster's Service CIDR, the
(pod IP, target port) pairs a connection may go to, by the controller's rules:

- a pod is an endpoint of a Service in its namespace whose selector its labels match,
  once it has an IP, while it is Ready and not being deleted (any state with
  ``publishNotReadyAddresses``);
- a numeric ``targetPort`` is used as it is, a named one is the ``containerPort`` of
  that name in the pod (pods without it are no endpoint for that port);
- a Service without a selector has no endpoints (its EndpointSlices would have to hold
  loopback addresses).
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FINISHED = ("Succeeded", "Failed")


class _Doc(BaseModel):
    """The fields of an API object the proxy reads; everything else is ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Meta(_Doc):
    name: str
    namespace: str = ""
    uid: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")


class ServicePort(_Doc):
    name: str = ""
    port: int
    protocol: str = "TCP"
    #: The API server defaults it to ``port``.
    target_port: int | str | None = Field(default=None, alias="targetPort")


class ServiceSpec(_Doc):
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    selector: dict[str, str] = Field(default_factory=dict)
    ports: list[ServicePort] = Field(default_factory=list)
    publish_not_ready: bool = Field(default=False, alias="publishNotReadyAddresses")


class Service(_Doc):
    metadata: Meta
    spec: ServiceSpec


class ContainerPort(_Doc):
    name: str = ""
    container_port: int = Field(alias="containerPort")
    protocol: str = "TCP"


class Container(_Doc):
    ports: list[ContainerPort] = Field(default_factory=list)


class PodSpec(_Doc):
    containers: list[Container] = Field(default_factory=list)


class Condition(_Doc):
    type: str
    status: str


class PodStatus(_Doc):
    phase: str = ""
    pod_ip: str = Field(default="", alias="podIP")
    conditions: list[Condition] = Field(default_factory=list)


class Pod(_Doc):
    metadata: Meta
    spec: PodSpec = Field(default_factory=PodSpec)
    status: PodStatus = Field(default_factory=PodStatus)


@dataclass(frozen=True)
class Endpoint:
    """What the table keeps of a pod that has an IP: enough to select and route to it."""

    labels: dict[str, str]
    ip: str
    ready: bool
    #: Named TCP container ports, for named target ports.
    ports: dict[str, int]

    @classmethod
    def of(cls, pod: Pod) -> Endpoint | None:
        if not pod.status.pod_ip or pod.status.phase in FINISHED:
            return None
        ready = pod.metadata.deletion_timestamp is None and any(
            c.type == "Ready" and c.status == "True" for c in pod.status.conditions
        )
        ports = {
            p.name: p.container_port
            for c in pod.spec.containers
            for p in c.ports
            if p.name and p.protocol == "TCP"
        }
        return cls(pod.metadata.labels, pod.status.pod_ip, ready, ports)

    def target(self, port: ServicePort) -> int | None:
        """The pod's port for a Service port, None if a named target port is not in the pod."""
        if port.target_port is None:
            return port.port
        if isinstance(port.target_port, int):
            return port.target_port
        if port.target_port.isdigit():  # an IntOrString sent as a string of digits
            return int(port.target_port)
        return self.ports.get(port.target_port)


@dataclass(frozen=True, order=True)
class Frontend:
    """Where the proxy listens: a Service's ClusterIP and port."""

    ip: str
    port: int
    #: ``namespace/name`` of the Service, for logs.
    service: str = field(default="", compare=False)


Backend = tuple[str, int]
Routes = dict[Frontend, list[Backend]]


def selects(service: Service, endpoint: Endpoint) -> bool:
    selector = service.spec.selector
    return bool(selector) and all(endpoint.labels.get(k) == v for k, v in selector.items())


def service_routes(
    service: Service, endpoints: list[Endpoint], cidr: ipaddress.IPv4Network
) -> Routes:
    """The routes of one Service given the pods with an IP in its namespace: none if its
    ClusterIP is missing, ``None`` (headless) or outside ``cidr``; one per TCP port
    otherwise, with its backends (maybe none), sorted."""
    try:
        ip = ipaddress.IPv4Address(service.spec.cluster_ip or "")
    except ValueError:
        return {}
    if ip not in cidr:
        return {}
    chosen = [
        e for e in endpoints if selects(service, e) and (e.ready or service.spec.publish_not_ready)
    ]
    routes: Routes = {}
    for port in service.spec.ports:
        if port.protocol != "TCP":
            continue
        targets = ((e.ip, e.target(port)) for e in chosen)
        name = f"{service.metadata.namespace}/{service.metadata.name}"
        routes[Frontend(str(ip), port.port, name)] = sorted(
            (host, target) for host, target in targets if target is not None
        )
    return routes


class ServiceTable:
    """Services and pods as last seen, keyed so that a deletion known only by its
    namespace, name and uid (an informer's relist) still finds what it removes."""

    def __init__(self, cidr: ipaddress.IPv4Network) -> None:
        self.cidr = cidr
        self._services: dict[tuple[str, str], Service] = {}
        #: namespace -> pod uid -> endpoint: a Service looks at its own namespace only.
        self._endpoints: defaultdict[str, dict[str, Endpoint]] = defaultdict(dict)

    def service_changed(self, doc: dict[str, Any]) -> None:
        service = Service.model_validate(doc)
        self._services[service.metadata.namespace, service.metadata.name] = service

    def service_deleted(self, doc: dict[str, Any]) -> None:
        meta = Meta.model_validate(doc["metadata"])
        self._services.pop((meta.namespace, meta.name), None)

    def pod_changed(self, doc: dict[str, Any]) -> None:
        pod = Pod.model_validate(doc)
        endpoint = Endpoint.of(pod)
        if endpoint is None:
            self._forget(pod.metadata)
        else:
            self._endpoints[pod.metadata.namespace][pod.metadata.uid] = endpoint

    def pod_deleted(self, doc: dict[str, Any]) -> None:
        self._forget(Meta.model_validate(doc["metadata"]))

    def _forget(self, meta: Meta) -> None:
        pods = self._endpoints.get(meta.namespace)
        if pods is not None:
            pods.pop(meta.uid, None)
            if not pods:
                del self._endpoints[meta.namespace]

    def services(self) -> list[Service]:
        return list(self._services.values())

    def routes(self) -> Routes:
        routes: Routes = {}
        for (namespace, _), service in self._services.items():
            pods = self._endpoints.get(namespace, {})
            routes.update(service_routes(service, list(pods.values()), self.cidr))
        return routes
