"""Routes from Services and pods, as the process node's kube-proxy stand-in sees them."""

from __future__ import annotations

import ipaddress
from typing import Any

from shiftboss.testing.node.servicetable import Frontend, ServiceTable

CIDR = ipaddress.IPv4Network("127.9.240.0/20")
WEB = {"app": "web"}


def service(
    name: str,
    ip: str | None,
    *ports: dict[str, Any],
    selector: dict[str, str] | None = WEB,
    namespace: str = "ns",
    **spec: Any,
) -> dict:
    spec["ports"] = list(ports) or [{"port": 80, "targetPort": 8080}]
    if ip is not None:
        spec["clusterIP"] = ip
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"svc-{name}"}, "spec": spec}


def pod(
    name: str,
    ip: str,
    labels: dict[str, str] = WEB,
    *,
    ready: bool = True,
    namespace: str = "ns",
    phase: str = "Running",
    ports: list[dict[str, Any]] | None = None,
    deleting: bool = False,
) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"pod-{name}"}
    meta["labels"] = labels
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "spec": {"containers": [{"name": "main", "ports": ports or []}]},
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def table(*docs: dict) -> ServiceTable:
    t = ServiceTable(CIDR)
    for doc in docs:
        (t.pod_changed if "status" in doc else t.service_changed)(doc)
    return t


def test_only_ready_selected_pods_of_the_namespace_are_backends():
    t = table(
        service("web", "127.9.240.10"),
        pod("a", "127.9.0.3"),
        pod("b", "127.9.0.2"),
        pod("not-ready", "127.9.0.4", ready=False),
        pod("deleting", "127.9.0.5", deleting=True),
        pod("done", "127.9.0.6", phase="Succeeded"),
        pod("other-app", "127.9.0.7", {"app": "db"}),
        pod("other-ns", "127.9.0.8", namespace="elsewhere"),
        pod("no-ip-yet", ""),
    )
    assert t.routes() == {Frontend("127.9.240.10", 80): [("127.9.0.2", 8080), ("127.9.0.3", 8080)]}


def test_every_selector_label_must_match_and_extra_pod_labels_do_not_matter():
    t = table(
        service("leader", "127.9.240.10", selector={"app": "web", "leader": "true"}),
        pod("a", "127.9.0.2", {"app": "web", "leader": "true", "extra": "x"}),
        pod("b", "127.9.0.3", {"app": "web", "leader": "false"}),
        pod("c", "127.9.0.4", {"app": "web"}),
    )
    assert t.routes() == {Frontend("127.9.240.10", 80): [("127.9.0.2", 8080)]}


def test_publish_not_ready_addresses_routes_to_pods_that_are_not_ready():
    t = table(
        service("web", "127.9.240.10", publishNotReadyAddresses=True),
        pod("a", "127.9.0.2", ready=False),
    )
    assert t.routes() == {Frontend("127.9.240.10", 80): [("127.9.0.2", 8080)]}


def test_target_ports_by_number_by_name_and_defaulting_to_the_service_port():
    ports = [
        {"name": "http", "port": 80, "targetPort": "http"},
        {"name": "metrics", "port": 9090, "targetPort": 8081},
        {"name": "same", "port": 7000},
        {"name": "digits", "port": 7001, "targetPort": "7002"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
    ]
    named = [{"name": "http", "containerPort": 8443}, {"name": "dns", "containerPort": 53}]
    t = table(
        service("web", "127.9.240.10", *ports),
        pod("a", "127.9.0.2", ports=named),
        pod("b", "127.9.0.3"),  # no port named http: no endpoint for that Service port
    )
    both = ["127.9.0.2", "127.9.0.3"]
    assert t.routes() == {  # UDP is not proxied
        Frontend("127.9.240.10", 80): [("127.9.0.2", 8443)],
        Frontend("127.9.240.10", 9090): [(ip, 8081) for ip in both],
        Frontend("127.9.240.10", 7000): [(ip, 7000) for ip in both],
        Frontend("127.9.240.10", 7001): [(ip, 7002) for ip in both],
    }


def test_services_outside_the_cidr_headless_without_ip_or_selector_get_no_backends():
    t = table(
        service("outside", "10.0.0.10"),
        service("other-cluster", "127.8.240.10"),
        service("headless", "None"),
        service("pending", None),
        service("no-selector", "127.9.240.12", selector=None),
        pod("a", "127.9.0.2"),
    )
    assert t.routes() == {Frontend("127.9.240.12", 80): []}


def test_changes_and_deletions_known_only_by_metadata_remove_what_they_name():
    t = table(service("web", "127.9.240.10"), pod("a", "127.9.0.2"), pod("b", "127.9.0.3"))
    t.pod_changed(pod("a", "127.9.0.2", ready=False))
    assert t.routes() == {Frontend("127.9.240.10", 80): [("127.9.0.3", 8080)]}
    # An informer's relist reports a deletion with namespace, name and uid only.
    t.pod_deleted({"metadata": {"uid": "pod-b", "namespace": "ns", "name": "b"}})
    assert t.routes() == {Frontend("127.9.240.10", 80): []}
    t.service_deleted({"metadata": {"uid": "svc-web", "namespace": "ns", "name": "web"}})
    assert t.routes() == {}
