"""The local control plane is real: scheduling, pod processes, signals, GC, tokens, version."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from shiftboss.testing.cluster import LocalCluster
from shiftboss.testing.processes import wait_until

PY = sys.executable


def pod_manifest(name: str, command: list[str], **spec) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "python:3.11", "command": command}],
                **spec,
            },
        }
    )


def apply_pod(cluster, namespace: str, manifest: str) -> None:
    cluster.kubectl("-n", namespace, "apply", "-f", "-", input=manifest)


def get_pod(cluster, namespace: str, name: str) -> dict:
    return json.loads(cluster.kubectl("-n", namespace, "get", "pod", name, "-o", "json").stdout)


def wait_phase(cluster, namespace: str, name: str, phases: set[str], timeout: float = 60) -> dict:
    def reached():
        pod = get_pod(cluster, namespace, name)
        return pod if pod.get("status", {}).get("phase") in phases else None

    return wait_until(reached, timeout=timeout, what=f"pod {name} in {sorted(phases)}")


def test_api_server_reports_the_pinned_version(cluster):
    if not isinstance(cluster, LocalCluster):
        pytest.skip("the pinned version is a property of the local control plane")
    pinned = {}
    for line in Path("hack/versions.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.strip().split("=", 1)
            pinned[key] = value
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == f"v{pinned['KUBE_VERSION']}"
    assert version["clientVersion"]["gitVersion"] == f"v{pinned['KUBE_VERSION']}"


def test_unscheduled_pod_runs_to_success(cluster, namespace):
    apply_pod(cluster, namespace, pod_manifest("ok", [PY, "-c", "print('hello from a pod')"]))
    pod = wait_phase(cluster, namespace, "ok", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == "process-node"  # placed by the real scheduler
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 0
    logs = cluster.kubectl("-n", namespace, "logs", "ok").stdout
    assert "hello from a pod" in logs


def test_failing_command_ends_failed_with_its_exit_code(cluster, namespace):
    apply_pod(cluster, namespace, pod_manifest("bad", [PY, "-c", "import sys; sys.exit(3)"]))
    pod = wait_phase(cluster, namespace, "bad", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_env_from_downward_api_secret_and_configmap(cluster, namespace):
    cluster.kubectl(
        "-n", namespace, "create", "secret", "generic", "s", "--from-literal=password=hunter2"
    )
    cluster.kubectl("-n", namespace, "create", "configmap", "c", "--from-literal=colour=blue")
    script = "import os; print(' '.join(os.environ[k] for k in ['NAME','NS','IP','PW','COLOUR','GREETING']))"
    env = [
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
        {"name": "COLOUR", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "colour"}}},
        {"name": "GREETING", "value": "hi-$(NAME)"},
    ]
    manifest = json.loads(pod_manifest("envy", [PY, "-c", script]))
    manifest["spec"]["containers"][0]["env"] = env
    apply_pod(cluster, namespace, json.dumps(manifest))
    pod = wait_phase(cluster, namespace, "envy", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Succeeded"
    words = cluster.kubectl("-n", namespace, "logs", "envy").stdout.split()
    assert words == ["envy", namespace, pod["status"]["podIP"], "hunter2", "blue", "hi-envy"]
    assert pod["status"]["podIP"].startswith("127.")


def test_two_pods_listen_on_the_same_port(cluster, namespace):
    server = (
        "import http.server, os; "
        "http.server.HTTPServer((os.environ['IP'], 8080), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    for name in ("web-a", "web-b"):
        manifest = json.loads(pod_manifest(name, [PY, "-c", server]))
        c = manifest["spec"]["containers"][0]
        c["env"] = [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
        c["readinessProbe"] = {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}
        apply_pod(cluster, namespace, json.dumps(manifest))
    for name in ("web-a", "web-b"):
        cluster.kubectl(
            "-n", namespace, "wait", f"pod/{name}", "--for=condition=Ready", "--timeout=60s"
        )
    ips = {get_pod(cluster, namespace, n)["status"]["podIP"] for n in ("web-a", "web-b")}
    assert len(ips) == 2


def test_deleting_a_running_pod_sends_sigterm_then_removes_it(cluster, namespace, tmp_path):
    # The process records the signal in a hostPath volume that outlives the pod.
    script = (
        "import os, signal, sys, time\n"
        "def bye(*_):\n"
        "    open(os.environ['MARK'], 'w').write('got SIGTERM'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\ntime.sleep(600)\n"
    )
    manifest = json.loads(pod_manifest("sleepy", [PY, "-c", script]))
    manifest["spec"]["volumes"] = [{"name": "out", "hostPath": {"path": str(tmp_path)}}]
    container = manifest["spec"]["containers"][0]
    container["volumeMounts"] = [{"name": "out", "mountPath": "/out"}]
    container["env"] = [{"name": "MARK", "value": "/out/mark"}]
    apply_pod(cluster, namespace, json.dumps(manifest))
    wait_phase(cluster, namespace, "sleepy", {"Running"})
    wait_until(
        lambda: "ready" in cluster.kubectl("-n", namespace, "logs", "sleepy").stdout,
        timeout=30,
        what="the pod's process to install its handler",
    )
    started = time.monotonic()
    cluster.kubectl("-n", namespace, "delete", "pod", "sleepy", "--timeout=60s")
    assert time.monotonic() - started < 25  # ended by SIGTERM, not by the 30 s grace period
    assert (tmp_path / "mark").read_text() == "got SIGTERM"
    assert cluster.kubectl("-n", namespace, "get", "pod", "sleepy", check=False).returncode != 0


def test_sigkill_after_the_grace_period(cluster, namespace):
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    apply_pod(
        cluster,
        namespace,
        pod_manifest("stubborn", [PY, "-c", script], terminationGracePeriodSeconds=2),
    )
    wait_phase(cluster, namespace, "stubborn", {"Running"})
    started = time.monotonic()
    cluster.kubectl("-n", namespace, "delete", "pod", "stubborn", "--timeout=60s")
    assert 2 <= time.monotonic() - started < 30


def test_garbage_collector_removes_owned_pods(cluster, namespace):
    cluster.kubectl("-n", namespace, "create", "configmap", "owner")
    owner = json.loads(
        cluster.kubectl("-n", namespace, "get", "configmap", "owner", "-o", "json").stdout
    )
    manifest = json.loads(pod_manifest("owned", [PY, "-c", "import time; time.sleep(600)"]))
    manifest["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    ]
    manifest["spec"]["terminationGracePeriodSeconds"] = 1
    apply_pod(cluster, namespace, json.dumps(manifest))
    wait_phase(cluster, namespace, "owned", {"Running"})
    cluster.kubectl("-n", namespace, "delete", "configmap", "owner")
    wait_until(
        lambda: (
            cluster.kubectl("-n", namespace, "get", "pod", "owned", check=False).returncode != 0
        ),
        timeout=90,
        what="the garbage collector to delete the owned pod",
    )


def test_projected_token_authenticates_as_the_pods_service_account(cluster, namespace):
    # The pod reads its projected token and asks the API server who it is, with its own
    # credentials (the in-cluster kubeconfig the node gives it).
    script = (
        "import json, os, sys, subprocess\n"
        "token = open(os.environ['TOKEN_FILE']).read().strip()\n"
        "review = {'apiVersion': 'authentication.k8s.io/v1', 'kind': 'TokenReview',"
        " 'spec': {'token': token, 'audiences': ['shiftboss']}}\n"
        "print(json.dumps(review))\n"
    )
    manifest = json.loads(pod_manifest("tok", [PY, "-c", script]))
    manifest["spec"]["volumes"] = [
        {
            "name": "sb-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "shiftboss",
                            "expirationSeconds": 600,
                            "path": "token",
                        }
                    }
                ]
            },
        }
    ]
    # Paths under a mountPath in env and args point at the node's copy of the volume.
    manifest["spec"]["containers"][0]["env"] = [
        {"name": "TOKEN_FILE", "value": "/var/run/secrets/shiftboss/token"}
    ]
    manifest["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "sb-token", "mountPath": "/var/run/secrets/shiftboss", "readOnly": True}
    ]
    apply_pod(cluster, namespace, json.dumps(manifest))
    pod = wait_phase(cluster, namespace, "tok", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Succeeded", cluster.kubectl(
        "-n", namespace, "logs", "tok"
    ).stdout
    review = cluster.kubectl("logs", "-n", namespace, "tok").stdout
    result = json.loads(cluster.kubectl("create", "-o", "json", "-f", "-", input=review).stdout)
    assert result["status"]["authenticated"] is True
    user = result["status"]["user"]
    assert user["username"] == f"system:serviceaccount:{namespace}:default"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["tok"]


def test_pod_credentials_carry_its_own_service_account(cluster, namespace):
    # RBAC is real for pod processes: the default service account may not list pods.
    kubectl = str(cluster.bin_dir / "kubectl") if isinstance(cluster, LocalCluster) else "kubectl"
    script = (
        "import subprocess, sys\n"
        f"r = subprocess.run([{kubectl!r}, 'auth', 'whoami', '-o', 'jsonpath={{.status.userInfo.username}}'],"
        " capture_output=True, text=True)\n"
        "print(r.stdout)\n"
        f"r = subprocess.run([{kubectl!r}, 'get', 'pods'], capture_output=True, text=True)\n"
        "print('forbidden' if 'forbidden' in r.stderr else 'allowed')\n"
    )
    apply_pod(cluster, namespace, pod_manifest("who", [PY, "-c", script]))
    pod = wait_phase(cluster, namespace, "who", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Succeeded"
    out = cluster.kubectl("-n", namespace, "logs", "who").stdout.split()
    assert out == [f"system:serviceaccount:{namespace}:default", "forbidden"]


def test_restart_policy_on_failure_restarts_with_backoff(cluster, namespace):
    # Fails twice, then succeeds: the marker file lives in an emptyDir that survives restarts.
    script = (
        "import os, sys\n"
        "p = os.environ['SCRATCH'] + '/count'\n"
        "n = int(open(p).read()) if os.path.exists(p) else 0\n"
        "open(p, 'w').write(str(n + 1))\n"
        "sys.exit(0 if n >= 2 else 1)\n"
    )
    manifest = json.loads(pod_manifest("flaky", [PY, "-c", script], restartPolicy="OnFailure"))
    manifest["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    manifest["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "scratch", "mountPath": "/scratch"}
    ]
    manifest["spec"]["containers"][0]["env"] = [{"name": "SCRATCH", "value": "/scratch"}]
    apply_pod(cluster, namespace, json.dumps(manifest))
    pod = wait_phase(cluster, namespace, "flaky", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 2


def test_init_containers_run_first_in_order(cluster, namespace, tmp_path):
    append = "import os, sys; open(os.environ['LOG'], 'a').write(sys.argv[1] + '\\n')"
    manifest = json.loads(pod_manifest("init", [PY, "-c", append, "main"]))
    spec = manifest["spec"]
    spec["volumes"] = [{"name": "out", "hostPath": {"path": str(tmp_path)}}]
    mount = [{"name": "out", "mountPath": "/out"}]
    env = [{"name": "LOG", "value": "/out/order"}]
    spec["containers"][0].update(volumeMounts=mount, env=env)
    spec["initContainers"] = [
        {
            "name": f"init-{i}",
            "image": "python:3.11",
            "command": [PY, "-c", append, f"init-{i}"],
            "volumeMounts": mount,
            "env": env,
        }
        for i in (1, 2)
    ]
    apply_pod(cluster, namespace, json.dumps(manifest))
    pod = wait_phase(cluster, namespace, "init", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Succeeded"
    assert (tmp_path / "order").read_text().split() == ["init-1", "init-2", "main"]
    assert [
        s["state"]["terminated"]["exitCode"] for s in pod["status"]["initContainerStatuses"]
    ] == [0, 0]


def test_failed_init_container_fails_the_pod_without_running_main(cluster, namespace, tmp_path):
    manifest = json.loads(pod_manifest("bad-init", [PY, "-c", "print('main ran')"]))
    manifest["spec"]["initContainers"] = [
        {"name": "init", "image": "python:3.11", "command": [PY, "-c", "raise SystemExit(4)"]}
    ]
    apply_pod(cluster, namespace, json.dumps(manifest))
    pod = wait_phase(cluster, namespace, "bad-init", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 4
    assert "running" not in pod["status"]["containerStatuses"][0]["state"]


def test_exec_readiness_probe_gates_ready(cluster, namespace, tmp_path):
    # Ready only once the process has created its marker file (after about 2 seconds).
    script = "import os, time; time.sleep(2); open(os.environ['MARK'], 'w'); time.sleep(600)"
    check = "import os, sys; sys.exit(0 if os.path.exists(os.environ['MARK']) else 1)"
    manifest = json.loads(
        pod_manifest("probed", [PY, "-c", script], terminationGracePeriodSeconds=1)
    )
    container = manifest["spec"]["containers"][0]
    manifest["spec"]["volumes"] = [{"name": "out", "hostPath": {"path": str(tmp_path)}}]
    container["volumeMounts"] = [{"name": "out", "mountPath": "/out"}]
    container["env"] = [{"name": "MARK", "value": "/out/ready"}]
    container["readinessProbe"] = {"exec": {"command": [PY, "-c", check]}, "periodSeconds": 1}
    apply_pod(cluster, namespace, json.dumps(manifest))
    wait_phase(cluster, namespace, "probed", {"Running"})
    assert not (tmp_path / "ready").exists()
    ready = {
        c["type"]: c["status"]
        for c in get_pod(cluster, namespace, "probed")["status"]["conditions"]
    }
    assert ready["Ready"] == "False"
    cluster.kubectl("-n", namespace, "wait", "pod/probed", "--for=condition=Ready", "--timeout=30s")
    assert (tmp_path / "ready").exists()
