"""Cluster DNS names on the process node: the node's hosts table, the environment it gives
containers, and the ``sitecustomize`` hook's lookups (in this process and in a real one)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shiftboss.testing.node import dns
from shiftboss.testing.node.servicetable import Service
from shiftboss.testing.node.sitehook import HOOK_DIR
from shiftboss.testing.node.sitehook import sitecustomize as hook

WEB_IP = "127.9.240.10"
TABLE = {"web.ns.svc.cluster.local": WEB_IP, "api.other.svc.cluster.local": "127.9.240.11"}


def service(name: str, namespace: str, cluster_ip: str | None) -> Service:
    spec = {} if cluster_ip is None else {"clusterIP": cluster_ip}
    return Service.model_validate(
        {"metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )


@pytest.fixture
def table_file(tmp_path, monkeypatch) -> Path:
    """The node's table for a pod in namespace ``ns``, as the node's environment says."""
    path = tmp_path / dns.HOSTS_FILE
    dns.write_atomically(path, json.dumps(TABLE))
    monkeypatch.setenv(hook.HOSTS_FILE_ENV, str(path))
    monkeypatch.setenv(hook.NAMESPACE_ENV, "ns")
    return path


def test_table_holds_the_fully_qualified_name_of_every_service_with_a_cluster_ip():
    services = [
        service("web", "ns", WEB_IP),
        service("api", "other", "127.9.240.11"),
        service("headless", "ns", "None"),
        service("pending", "ns", None),
    ]
    assert dns.hosts_table(services) == {
        "api.other.svc.cluster.local": "127.9.240.11",
        "web.ns.svc.cluster.local": WEB_IP,
    }


def test_containers_get_the_hook_first_on_pythonpath_and_keep_their_own_after_it(tmp_path):
    hosts = tmp_path / dns.HOSTS_FILE
    env = dns.pod_env({"PYTHONPATH": "/app:/lib", "A": "1"}, "ns", hosts)
    assert env == {
        "A": "1",
        "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), "/app:/lib"]),
        hook.HOSTS_FILE_ENV: str(hosts),
        hook.NAMESPACE_ENV: "ns",
    }
    assert dns.pod_env({}, "ns", hosts)["PYTHONPATH"] == str(HOOK_DIR)
    assert (HOOK_DIR / "sitecustomize.py").is_file()


def test_hosts_file_is_replaced_when_the_table_changes_and_left_alone_otherwise(tmp_path):
    hosts = dns.HostsFile(tmp_path / dns.HOSTS_FILE)
    hosts.update([service("web", "ns", WEB_IP)])
    first = hosts.path.stat()
    assert json.loads(hosts.path.read_text()) == {"web.ns.svc.cluster.local": WEB_IP}
    hosts.update([service("web", "ns", WEB_IP), service("headless", "ns", "None")])
    assert hosts.path.stat().st_ino == first.st_ino  # same table: not written again
    hosts.update([])
    assert hosts.path.stat().st_ino != first.st_ino  # a new file renamed over the old
    assert json.loads(hosts.path.read_text()) == {}
    assert [p.name for p in tmp_path.iterdir()] == [dns.HOSTS_FILE]  # no temporary left


def test_search_path_is_the_kubelets_with_ndots_5():
    assert hook.candidates("web", "ns") == [
        "web.ns.svc.cluster.local",
        "web.svc.cluster.local",
        "web.cluster.local",
        "web",
    ]
    assert hook.candidates("Web.NS.svc.", "ns") == ["web.ns.svc"]  # absolute: as it is
    assert hook.candidates("a.b.c.d.e.f", "ns")[0] == "a.b.c.d.e.f"  # 5 dots: as it is first
    assert hook.candidates("web", "") == ["web.svc.cluster.local", "web.cluster.local", "web"]


@pytest.mark.parametrize(
    "name",
    ["web", "web.ns", "web.ns.svc", "web.ns.svc.cluster.local", "WEB.ns.svc", b"web.ns.svc"],
)
def test_service_names_resolve_to_the_cluster_ip(table_file, name):
    assert hook.lookup(name) == WEB_IP


@pytest.mark.parametrize("name", ["api", "web.ns.svc.cluster", "localhost", "127.0.0.1", None])
def test_other_names_are_left_to_the_real_resolver(table_file, name):
    assert hook.lookup(name) is None  # "api" is in another namespace: only api.other


def test_table_is_read_again_when_the_node_replaces_it(table_file):
    assert hook.lookup("web") == WEB_IP
    dns.write_atomically(table_file, json.dumps({"web.ns.svc.cluster.local": "127.9.240.99"}))
    assert hook.lookup("web") == "127.9.240.99"


def test_any_error_in_the_hook_falls_back_to_the_real_resolver(table_file, monkeypatch):
    table_file.write_text("{not json")
    assert hook.lookup("web") is None
    table_file.unlink()
    assert hook.lookup("web") is None
    dns.write_atomically(table_file, json.dumps(TABLE))
    monkeypatch.delenv(hook.HOSTS_FILE_ENV)
    assert hook.lookup("web") is None


def test_wrapped_resolver_answers_service_names_and_passes_the_rest_on(table_file):
    answers = hook.getaddrinfo("web.ns.svc", 8000, socket.AF_INET, socket.SOCK_STREAM)
    assert [sockaddr for *_, sockaddr in answers] == [(WEB_IP, 8000)]
    assert hook.gethostbyname("web") == WEB_IP
    assert hook.gethostbyname("localhost") == "127.0.0.1"
    with pytest.raises(socket.gaierror):
        hook.getaddrinfo("nope.ns.svc", 80)


def run_python(code: str, env: dict[str, str]) -> str:
    """``code`` in a fresh interpreter started as the node starts a container's."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_python_process_resolves_names_and_still_runs_its_own_sitecustomize(table_file):
    own = table_file.parent / "app"
    own.mkdir()
    (own / "sitecustomize.py").write_text("import os\nos.environ['OWN_SITECUSTOMIZE'] = 'ran'\n")
    base = {"PATH": os.environ["PATH"], "PYTHONPATH": str(own)}
    env = dns.pod_env(base, "ns", table_file)
    code = (
        "import os, socket, sitecustomize\n"
        "print(socket.gethostbyname('web'), os.environ.get('OWN_SITECUSTOMIZE'),"
        " sitecustomize.__file__)"
    )
    ip, own_ran, module = run_python(code, env).split()
    assert (ip, own_ran, module) == (WEB_IP, "ran", str(own / "sitecustomize.py"))
    # Without one of its own, the process still starts and resolves.
    env["PYTHONPATH"] = str(HOOK_DIR)
    assert run_python(code, env).split()[:2] == [WEB_IP, "None"]
