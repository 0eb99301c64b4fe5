"""Routes from Services and EndpointSlices, as the process node's kube-proxy stand-in sees them."""

from __future__ import annotations

import ipaddress
from typing import Any

from shiftboss.testing.node.servicetable import Frontend, ServiceTable

CIDR = ipaddress.IPv4Network("127.9.240.0/20")


def service(name: str, ip: str | None, *ports: dict[str, Any], namespace: str = "ns") -> dict:
    spec: dict[str, Any] = {"ports": list(ports) or [{"port": 80, "protocol": "TCP"}]}
    if ip is not None:
        spec["clusterIP"] = ip
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"svc-{name}"},
        "spec": spec,
    }


def endpoint(address: str, ready: bool | None = True) -> dict:
    conditions = {} if ready is None else {"ready": ready}
    return {"addresses": [address], "conditions": conditions}


def endpoint_slice(
    name: str,
    service_name: str,
    endpoints: list[dict],
    ports: list[dict] | None = None,
    *,
    namespace: str = "ns",
    address_type: str = "IPv4",
) -> dict:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"eps-{name}",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "", "port": 8080, "protocol": "TCP"}],
    }


def table(*docs: dict) -> ServiceTable:
    t = ServiceTable(CIDR)
    for doc in docs:
        (t.slice_changed if "addressType" in doc else t.service_changed)(doc)
    return t


def test_only_ready_endpoints_are_backends_and_unknown_readiness_counts_as_ready():
    t = table(
        service("web", "127.9.240.10"),
        endpoint_slice(
            "web-1",
            "web",
            [
                endpoint("127.9.0.3"),
                endpoint("127.9.0.2", ready=None),
                endpoint("127.9.0.4", ready=False),
            ],
        ),
    )
    assert t.routes() == {Frontend("127.9.240.10", 80): [("127.9.0.2", 8080), ("127.9.0.3", 8080)]}


def test_a_service_port_takes_the_slice_port_of_its_own_name():
    ports = [
        {"name": "http", "port": 80},
        {"name": "metrics", "port": 9090},
        {"name": "dns", "port": 53, "protocol": "UDP"},
    ]
    slice_ports = [
        {"name": "http", "port": 8080, "protocol": "TCP"},
        {"name": "metrics", "port": 8081, "protocol": "TCP"},
        {"name": "dns", "port": 5353, "protocol": "UDP"},
    ]
    t = table(
        service("web", "127.9.240.10", *ports),
        endpoint_slice("web-1", "web", [endpoint("127.9.0.2")], slice_ports),
    )
    assert t.routes() == {  # UDP is not proxied
        Frontend("127.9.240.10", 80): [("127.9.0.2", 8080)],
        Frontend("127.9.240.10", 9090): [("127.9.0.2", 8081)],
    }


def test_endpoints_from_every_slice_of_the_service_only_and_without_duplicates():
    t = table(
        service("web", "127.9.240.10"),
        service("db", "127.9.240.11"),
        endpoint_slice("web-1", "web", [endpoint("127.9.0.2"), endpoint("127.9.0.3")]),
        endpoint_slice("web-2", "web", [endpoint("127.9.0.3"), endpoint("127.9.0.5")]),
        endpoint_slice("web-v6", "web", [endpoint("::1")], address_type="IPv6"),
        endpoint_slice("other-ns", "web", [endpoint("127.9.0.9")], namespace="elsewhere"),
        endpoint_slice("db-1", "db", [endpoint("127.9.0.7")]),
    )
    assert t.routes()[Frontend("127.9.240.10", 80)] == [
        ("127.9.0.2", 8080),
        ("127.9.0.3", 8080),
        ("127.9.0.5", 8080),
    ]
    assert t.routes()[Frontend("127.9.240.11", 80)] == [("127.9.0.7", 8080)]


def test_services_outside_the_cidr_headless_or_without_ip_get_no_route():
    t = table(
        service("outside", "10.0.0.10"),
        service("other-cluster", "127.8.240.10"),
        service("headless", "None"),
        service("pending", None),
        service("no-endpoints", "127.9.240.12"),
    )
    assert t.routes() == {Frontend("127.9.240.12", 80): []}


def test_deletions_known_only_by_metadata_remove_what_they_name():
    t = table(
        service("web", "127.9.240.10"),
        endpoint_slice("web-1", "web", [endpoint("127.9.0.2")]),
        endpoint_slice("web-2", "web", [endpoint("127.9.0.3")]),
    )
    # An informer's relist reports a deletion with namespace, name and uid only.
    t.slice_deleted({"metadata": {"uid": "eps-web-1", "namespace": "ns", "name": "web-1"}})
    assert t.routes() == {Frontend("127.9.240.10", 80): [("127.9.0.3", 8080)]}
    t.service_deleted({"metadata": {"uid": "svc-web", "namespace": "ns", "name": "web"}})
    assert t.routes() == {}


def test_a_changed_slice_replaces_the_one_seen_before():
    t = table(
        service("web", "127.9.240.10"),
        endpoint_slice("web-1", "web", [endpoint("127.9.0.2")]),
        endpoint_slice("web-1", "web", [endpoint("127.9.0.2", ready=False), endpoint("127.9.0.3")]),
    )
    assert t.routes() == {Frontend("127.9.240.10", 80): [("127.9.0.3", 8080)]}
