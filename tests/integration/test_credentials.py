"""``shiftboss run`` with a kubeconfig that authenticates through an exec credential
plugin (as EKS, GKE and AKS kubeconfigs do), as a service account with only the RBAC the
operator needs; and the same operator when the plugin's token expires and is revoked."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import apply, job_manifest, pool_manifest, wait_jobs_done

from shiftboss.testing.operator import OperatorProcess
from shiftboss.testing.processes import wait_until

OPERATOR_ACCOUNT = "shiftboss-operator"

# What `shiftboss run --namespace N` needs.  Cluster-wide: TokenReviews of worker tokens,
# and Kopf's scan of the CRDs that define the watched resources.
OPERATOR_RULES = [
    {"apiGroups": ["shiftboss.io"], "resources": ["*"], "verbs": ["*"]},
    {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["*"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["*"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["subjectaccessreviews"],
        "verbs": ["create"],
    },
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
]

# Prints an ExecCredential with the token in `token` next to it, valid for `seconds`
# (if that file exists); appends the token it served to `served`.
PLUGIN = """\
import datetime as dt, json, os, pathlib
here = pathlib.Path(__file__).parent
token = (here / "token").read_text().strip()
with open(here / "served", "a") as served:
    served.write(token + "\\n")
status = {"token": token}
if (here / "seconds").exists():
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=float((here / "seconds").read_text()))
    status["expirationTimestamp"] = expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
api = json.loads(os.environ["KUBERNETES_EXEC_INFO"])["apiVersion"]
print(json.dumps({"apiVersion": api, "kind": "ExecCredential", "status": status}))
"""


@dataclass
class Plugin:
    dir: Path

    def serve(self, token: str) -> None:
        (self.dir / "token").write_text(token)

    def served(self) -> list[str]:
        path = self.dir / "served"
        return path.read_text().split() if path.exists() else []


@pytest.fixture
def operator_account(cluster, namespace) -> Iterator[str]:
    """A service account bound to the operator's RBAC; yields its name."""
    binding = f"{OPERATOR_ACCOUNT}-{namespace}"
    cluster.kubectl("-n", namespace, "create", "serviceaccount", OPERATOR_ACCOUNT)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": binding},
        "rules": OPERATOR_RULES,
    }
    bound = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": binding},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": binding,
        },
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_ACCOUNT, "namespace": namespace}],
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, bound]))
    yield OPERATOR_ACCOUNT
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", binding, check=False)


def create_token(cluster, namespace: str, *bound: str) -> str:
    """``kubectl create token`` for the operator's account (bound to an object, if given)."""
    args = ["--bound-object-kind", bound[0], "--bound-object-name", bound[1]] if bound else []
    result = cluster.kubectl(
        "-n", namespace, "create", "token", OPERATOR_ACCOUNT, "--duration", "1h", *args
    )
    return result.stdout.strip()


@pytest.fixture
def plugin(tmp_path) -> Plugin:
    directory = tmp_path / "plugin"
    directory.mkdir()
    script = directory / "get-token"
    script.write_text(f"#!{sys.executable}\n{PLUGIN}")
    script.chmod(0o755)
    return Plugin(directory)


@pytest.fixture
def exec_kubeconfig(cluster, namespace, plugin, tmp_path) -> Path:
    """The cluster's address and CA from the admin kubeconfig; the user is the plugin."""
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [
            {
                "name": "operator",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1",
                        "command": "./get-token",  # relative to this file, as kubectl does
                        "interactiveMode": "Never",
                    }
                },
            }
        ],
        "contexts": [
            {
                "name": "operator",
                "context": {"cluster": "local", "user": "operator", "namespace": namespace},
            }
        ],
        "current-context": "operator",
    }
    path = plugin.dir / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


def start_operator(cluster, namespace, exec_kubeconfig, tmp_path) -> OperatorProcess:
    env = {**cluster.env(), "KUBECONFIG": str(exec_kubeconfig)}
    return OperatorProcess(env, tmp_path / "operator.log", namespaces=[namespace]).start()


def assert_clean_log(tmp_path) -> None:
    log = (tmp_path / "operator.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-5000:]


def authenticated(cluster, token: str) -> bool:
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }
    result = cluster.kubectl(
        "create",
        "--raw",
        "/apis/authentication.k8s.io/v1/tokenreviews",
        "-f",
        "-",
        input=json.dumps(review),
    )
    return bool(json.loads(result.stdout).get("status", {}).get("authenticated"))


def run_job(cluster, namespace: str, name: str, count: int) -> None:
    apply(cluster, namespace, job_manifest(name, "add", {"a": count, "b": 1}))
    jobs = {j["metadata"]["name"]: j for j in wait_jobs_done(cluster, namespace, count)}
    status = jobs[name]["status"]
    assert status["phase"] == "Succeeded", status
    assert status["result"] == count + 1


def test_an_exec_plugin_kubeconfig_drives_the_operator(
    cluster, namespace, operator_account, plugin, exec_kubeconfig, tmp_path
):
    token = create_token(cluster, namespace)
    plugin.serve(token)
    operator = start_operator(cluster, namespace, exec_kubeconfig, tmp_path)
    try:
        apply(cluster, namespace, pool_manifest("demo"))
        run_job(cluster, namespace, "add-1", 1)
    finally:
        operator.stop()
    assert_clean_log(tmp_path)
    # The token never expires (no expirationTimestamp): one run serves the whole operator.
    assert plugin.served() == [token]


def test_expiring_and_revoked_tokens_are_renewed(
    cluster, namespace, operator_account, plugin, exec_kubeconfig, tmp_path
):
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "first")
    cluster.kubectl("-n", namespace, "create", "secret", "generic", "second")
    first = create_token(cluster, namespace, "Secret", "first")
    second = create_token(cluster, namespace, "Secret", "second")
    plugin.serve(first)
    (plugin.dir / "seconds").write_text("4")  # the plugin says every token lives 4 s
    operator = start_operator(cluster, namespace, exec_kubeconfig, tmp_path)
    try:
        apply(cluster, namespace, pool_manifest("demo"))
        run_job(cluster, namespace, "add-1", 1)
        # The token itself lives an hour: only its expirationTimestamp makes the operator
        # run the plugin again (the pool's resync sends a request at least every 10 s).
        wait_until(
            lambda: plugin.served().count(first) >= 2,
            timeout=60,
            what="the operator to renew the expiring token",
        )
        # Revoke the first token (its bound Secret goes) and let the plugin hand out the second.
        plugin.serve(second)
        cluster.kubectl("-n", namespace, "delete", "secret", "first")
        wait_until(
            lambda: not authenticated(cluster, first),
            timeout=30,
            what="the first token to be refused",
        )
        run_job(cluster, namespace, "add-2", 2)
    finally:
        operator.stop()
    assert_clean_log(tmp_path)
    assert plugin.served()[-1] == second
