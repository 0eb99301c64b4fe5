"""Services on the process node: a ClusterIP:port reaches the ready pods the Service selects,
as kube-proxy would route it (the endpointslice controller fills the EndpointSlices)."""

from __future__ import annotations

import ipaddress
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from shiftboss.testing.cluster import LocalCluster
from shiftboss.testing.processes import wait_until

PY = sys.executable
#: Answers every GET with the pod's name; ready while no "<name>.unready" file exists.
SERVER = (
    "import http.server, os\n"
    "class Name(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = os.environ['NAME'].encode()\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "http.server.HTTPServer((os.environ['IP'], 8080), Name).serve_forever()\n"
)
READY = "import os, sys; sys.exit(os.path.exists(os.environ['FLAGS'] + '/' + os.environ['NAME']))"


@pytest.fixture
def local(cluster) -> LocalCluster:
    if not isinstance(cluster, LocalCluster):
        pytest.skip("ClusterIPs are reachable from the test only on the process node")
    return cluster


def pod(name: str, labels: dict[str, str], flags: Path) -> dict:
    env = [
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "FLAGS", "value": "/flags"},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "flags", "hostPath": {"path": str(flags)}}],
            "containers": [
                {
                    "name": "web",
                    "image": "python:3.11",
                    "command": [PY, "-c", SERVER],
                    "env": env,
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "volumeMounts": [{"name": "flags", "mountPath": "/flags"}],
                    "readinessProbe": {
                        "exec": {"command": [PY, "-c", READY]},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                }
            ],
        },
    }


def answer(ip: str) -> str:
    """The pod name the Service answered with, or the kind of failure."""
    try:
        with urllib.request.urlopen(f"http://{ip}/", timeout=3) as response:
            return str(response.read().decode())
    except urllib.error.URLError as exc:
        return type(exc.reason).__name__
    except OSError as exc:
        return type(exc).__name__


def wait_answers(ip: str, expected: set[str], tries: int = 6) -> None:
    """Until ``tries`` requests in a row answer exactly ``expected`` (every name in it)."""

    def settled() -> bool:
        return {answer(ip) for _ in range(tries)} == expected

    wait_until(settled, timeout=30, interval=0.2, what=f"{ip} to answer {sorted(expected)}")


def test_cluster_ip_routes_to_ready_selected_pods(local, namespace, tmp_path):
    ip = local.free_service_ip()
    assert ipaddress.IPv4Address(ip) in local.service_cidr
    doc = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            pod("web-a", {"app": "web", "leader": "true"}, tmp_path),
            pod("web-b", {"app": "web"}, tmp_path),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {
                    "clusterIP": ip,
                    "selector": {"app": "web", "leader": "true"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                },
            },
        ],
    }
    local.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc))
    local.kubectl(
        "-n", namespace, "wait", "pod/web-a", "pod/web-b", "--for=condition=Ready", "--timeout=60s"
    )
    wait_answers(ip, {"web-a"})  # only the labelled pod, never the other
    kubernetes = local.get_json("-n", "default", "service", "kubernetes")["spec"]["clusterIP"]
    assert kubernetes == str(local.service_cidr[1])  # the API server's CIDR is the node's
    for name in ("web-a", "web-b"):
        pod_ip = local.get_json("-n", namespace, "pod", name)["status"]["podIP"]
        assert ipaddress.IPv4Address(pod_ip) < local.service_cidr.network_address

    def label(name: str, value: str) -> None:
        local.kubectl("-n", namespace, "label", "pod", name, f"leader={value}", "--overwrite")

    label("web-a", "false")
    label("web-b", "true")
    wait_answers(ip, {"web-b"})  # the label moved, and the traffic with it

    label("web-a", "true")
    wait_answers(ip, {"web-a", "web-b"})  # both selected: connections rotate

    (tmp_path / "web-a").touch()  # web-a fails its readiness probe
    wait_answers(ip, {"web-b"})
    (tmp_path / "web-b").touch()
    wait_answers(ip, {"ConnectionRefusedError"})  # no ready endpoint: refused

    (tmp_path / "web-b").unlink()
    wait_answers(ip, {"web-b"})
    local.kubectl("-n", namespace, "delete", "service", "web")
    wait_answers(ip, {"ConnectionRefusedError"})


#: Prints, for each name in argv, what a GET of http://<name>/ answered; and whether the
#: pod's own sitecustomize (on its own PYTHONPATH) ran.
CLIENT = (
    "import json, os, sys, urllib.error, urllib.request\n"
    "def get(name):\n"
    "    try:\n"
    "        with urllib.request.urlopen(f'http://{name}/', timeout=3) as r:\n"
    "            return r.read().decode()\n"
    "    except urllib.error.URLError as exc:\n"
    "        return type(exc.reason).__name__\n"
    "print(json.dumps({'own': os.environ.get('OWN'), **{n: get(n) for n in sys.argv[1:]}}))\n"
)


def test_python_pods_reach_services_by_their_cluster_dns_names(local, namespace, tmp_path):
    ip = local.free_service_ip()
    own = tmp_path / "lib"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['OWN'] = 'ran'\n")
    web = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "clusterIP": ip,
            "selector": {"app": "web"},
            "ports": [{"port": 80, "targetPort": "http"}],
        },
    }
    doc = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [pod("web-a", {"app": "web"}, tmp_path), web],
    }
    local.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc))
    local.kubectl("-n", namespace, "wait", "pod/web-a", "--for=condition=Ready", "--timeout=60s")
    wait_answers(ip, {"web-a"})

    names = [
        f"web.{namespace}.svc",
        f"web.{namespace}.svc.cluster.local",
        f"web.{namespace}",
        "web",
        f"nope.{namespace}.svc",
    ]
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "client",
                    "image": "python:3.11",
                    "command": [PY, "-c", CLIENT, *names],
                    "env": [{"name": "PYTHONPATH", "value": str(own)}],
                }
            ],
        },
    }
    local.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(client))
    local.kubectl(
        "-n",
        namespace,
        "wait",
        "pod/client",
        "--for=jsonpath={.status.phase}=Succeeded",
        "--timeout=60s",
    )
    answers = json.loads(local.kubectl("-n", namespace, "logs", "client").stdout)
    assert (
        answers
        == {
            "own": "ran",  # the pod's own sitecustomize still runs after the node's
            **{name: "web-a" for name in names[:-1]},
            f"nope.{namespace}.svc": "gaierror",  # a name no Service has fails as before
        }
    )
