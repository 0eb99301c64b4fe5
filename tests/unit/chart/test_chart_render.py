"""What `helm template` renders: objects per values, the operator pod, TLS, monitoring,
NetworkPolicy, dashboard and NOTES."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections import Counter

import pytest
import yaml
from chart_render import (
    CHART,
    NAMESPACE,
    env_of,
    helm,
    operator_container,
    render,
    template_args,
)
from cryptography import x509

from shiftboss.pools.pods import POOL_LABEL

SELECTOR = {
    "app.kubernetes.io/name": "shiftboss",
    "app.kubernetes.io/instance": "shiftboss",
    "app.kubernetes.io/component": "operator",
}


def test_default_objects():
    assert Counter(render().kinds()) == {
        "CustomResourceDefinition": 2,
        "ServiceAccount": 1,
        "ClusterRole": 2,
        "ClusterRoleBinding": 2,
        "Role": 2,
        "RoleBinding": 2,
        "Secret": 1,
        "Service": 1,
        "Deployment": 1,
        "PodDisruptionBudget": 1,
    }


def test_deployment_two_replicas_that_roll_without_losing_a_standby():
    rendered = render()
    spec = rendered.one("Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    pdb = rendered.one("PodDisruptionBudget")["spec"]
    assert pdb == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}


def test_operator_container_contract():
    container = operator_container(render())
    assert container["command"] == ["shiftboss", "run"]
    env = env_of(container)
    assert env["SHIFTBOSS_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["SHIFTBOSS_POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["SHIFTBOSS_HOST"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["SHIFTBOSS_PORT"] == "8000"
    assert env["SHIFTBOSS_LEADER_ELECT"] == "true"
    assert env["SHIFTBOSS_LEADER_ELECT_NAMESPACE"] == NAMESPACE
    assert env["SHIFTBOSS_WORKER_API_URL"] == f"https://shiftboss.{NAMESPACE}.svc:8000"
    assert env["SHIFTBOSS_TLS_CERT_FILE"] == "/etc/shiftboss/tls/tls.crt"
    assert env["SHIFTBOSS_TLS_KEY_FILE"] == "/etc/shiftboss/tls/tls.key"
    assert env["SHIFTBOSS_WORKER_CA_FILE"] == "/etc/shiftboss/tls/ca.crt"
    assert "SHIFTBOSS_NAMESPACES" not in env  # cluster scope: every namespace


def test_namespaced_scope_names_the_namespaces():
    rendered = render(**{"rbac.scope": "namespaced", "watchNamespaces": ["team-a", "team-b"]})
    assert env_of(operator_container(rendered))["SHIFTBOSS_NAMESPACES"] == "team-a,team-b"


@pytest.mark.parametrize(("tls", "scheme"), [(True, "HTTPS"), (False, "HTTP")])
def test_probes_on_the_worker_api_port(tls, scheme):
    container = operator_container(render(**{"tls.enabled": tls}))
    assert container["ports"] == [{"name": "worker-api", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/healthz",
        "port": "worker-api",
        "scheme": scheme,
    }
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/readyz",
        "port": "worker-api",
        "scheme": scheme,
    }


def test_pod_security_restricted():
    rendered = render()
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = operator_container(rendered)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["tmp"] == "/tmp"
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]


def test_worker_api_service_selects_the_leader_only():
    service = render().one("Service", "shiftboss")
    assert service["spec"]["selector"] == {**SELECTOR, "shiftboss.io/leader": "true"}
    assert service["spec"]["ports"] == [
        {"name": "worker-api", "port": 8000, "targetPort": "worker-api", "protocol": "TCP"}
    ]
    assert "clusterIP" not in service["spec"]


def test_pinned_cluster_ip_and_url():
    rendered = render(
        **{
            "workerApi.service.clusterIP": "127.3.240.9",
            "workerApi.url": "https://127.3.240.9:8000",
        }
    )
    assert rendered.one("Service", "shiftboss")["spec"]["clusterIP"] == "127.3.240.9"
    env = env_of(operator_container(rendered))
    assert env["SHIFTBOSS_WORKER_API_URL"] == "https://127.3.240.9:8000"
    cert = _generated_cert(rendered)
    ips = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in ips.get_values_for_type(x509.IPAddress)] == ["127.3.240.9"]


def _secret_data(rendered, name="shiftboss-worker-api-tls"):
    secret = rendered.one("Secret", name)
    assert secret["type"] == "kubernetes.io/tls"
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def _generated_cert(rendered):
    return x509.load_pem_x509_certificate(_secret_data(rendered)["tls.crt"])


def test_generated_tls_signed_by_its_ca_for_the_service_names():
    rendered = render()
    data = _secret_data(rendered)
    assert set(data) == {"tls.crt", "tls.key", "ca.crt"}
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [
        "shiftboss",
        f"shiftboss.{NAMESPACE}",
        f"shiftboss.{NAMESPACE}.svc",
        f"shiftboss.{NAMESPACE}.svc.cluster.local",
    ]
    # The pod template's checksum is the certificate's: a new one rolls the operator.
    annotations = rendered.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    pem = data["tls.crt"]
    assert annotations["checksum/tls"] == hashlib.sha256(pem).hexdigest()


def _tls_volume(rendered):
    volumes = rendered.one("Deployment")["spec"]["template"]["spec"]["volumes"]
    return [v for v in volumes if v["name"] == "tls"]


def test_tls_from_the_users_secret():
    rendered = render(**{"tls.secretName": "my-tls"})
    assert not rendered.of_kind("Secret")
    assert _tls_volume(rendered) == [{"name": "tls", "secret": {"secretName": "my-tls"}}]


def test_tls_from_cert_manager():
    rendered = render(**{"tls.certManager.enabled": True})
    assert not rendered.of_kind("Secret")
    serving = rendered.one("Certificate", "shiftboss-worker-api")["spec"]
    assert serving["secretName"] == "shiftboss-worker-api-tls"
    assert f"shiftboss.{NAMESPACE}.svc" in serving["dnsNames"]
    assert serving["issuerRef"] == {
        "name": "shiftboss-ca",
        "kind": "Issuer",
        "group": "cert-manager.io",
    }
    assert rendered.one("Issuer", "shiftboss-ca")["spec"] == {"ca": {"secretName": "shiftboss-ca"}}
    assert rendered.one("Certificate", "shiftboss-ca")["spec"]["isCA"] is True
    assert _tls_volume(rendered)[0]["secret"]["secretName"] == "shiftboss-worker-api-tls"


def test_tls_from_cert_manager_with_the_users_issuer():
    issuer = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    rendered = render(**{"tls.certManager.enabled": True, "tls.certManager.issuerRef": issuer})
    assert [c["metadata"]["name"] for c in rendered.of_kind("Certificate")] == [
        "shiftboss-worker-api"
    ]
    assert not rendered.of_kind("Issuer")
    assert rendered.one("Certificate")["spec"]["issuerRef"] == issuer


def test_tls_off():
    rendered = render(**{"tls.enabled": False})
    assert not rendered.of_kind("Secret") and not _tls_volume(rendered)
    env = env_of(operator_container(rendered))
    assert env["SHIFTBOSS_WORKER_API_URL"] == f"http://shiftboss.{NAMESPACE}.svc:8000"
    assert not {"SHIFTBOSS_TLS_CERT_FILE", "SHIFTBOSS_WORKER_CA_FILE"} & set(env)


def test_monitoring_off_by_default():
    kinds = set(render().kinds())
    assert not {"ServiceMonitor", "PodMonitor", "ConfigMap", "NetworkPolicy"} & kinds


def test_monitors_scrape_every_replica_verifying_tls():
    rendered = render(
        **{"metrics.serviceMonitor.enabled": True, "metrics.podMonitor.enabled": True}
    )
    metrics = rendered.one("Service", "shiftboss-metrics")["spec"]
    assert metrics["clusterIP"] == "None"
    assert metrics["selector"] == SELECTOR  # standbys too: no leader label
    monitor = rendered.one("ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"] == {**SELECTOR, "shiftboss.io/metrics": "true"}
    pod_monitor = rendered.one("PodMonitor")["spec"]
    assert pod_monitor["selector"]["matchLabels"] == SELECTOR
    for endpoint in (monitor["endpoints"][0], pod_monitor["podMetricsEndpoints"][0]):
        assert endpoint["path"] == "/metrics" and endpoint["scheme"] == "https"
        assert endpoint["tlsConfig"] == {
            "serverName": f"shiftboss.{NAMESPACE}.svc",
            "ca": {"secret": {"name": "shiftboss-worker-api-tls", "key": "ca.crt"}},
        }


def test_network_policy_admits_workers_and_scrapers_only():
    scrapers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}]
    rendered = render(**{"networkPolicy.enabled": True, "networkPolicy.metricsFrom": scrapers})
    policy = rendered.one("NetworkPolicy")["spec"]
    assert policy["podSelector"] == {"matchLabels": SELECTOR}
    assert policy["policyTypes"] == ["Ingress"]
    port = [{"port": "worker-api", "protocol": "TCP"}]
    workers = {"namespaceSelector": {}, "podSelector": {"matchExpressions": [
        {"key": POOL_LABEL, "operator": "Exists"}
    ]}}  # fmt: skip
    assert policy["ingress"] == [
        {"from": [workers], "ports": port},
        {"from": scrapers, "ports": port},
    ]


def test_dashboard_config_map():
    rendered = render(**{"dashboard.enabled": True})
    config_map = rendered.one("ConfigMap", "shiftboss-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "shiftboss.json").read_text())
    assert json.loads(config_map["data"]["shiftboss.json"]) == shipped


def test_notes_say_what_to_do_next(tmp_path):
    # helm renders NOTES.txt only when installing (a cluster): here, through `tpl` in a
    # template of a copy of the chart.
    chart = tmp_path / "shiftboss"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "files" / "notes.txt")
    (chart / "templates" / "notes.yaml").write_text(
        '{"notes": {{ tpl (.Files.Get "files/notes.txt") . | toJson }}}'
    )
    values = {"rbac.scope": "namespaced", "watchNamespaces": ["team-a"]}
    args = template_args(values, chart)
    notes = yaml.safe_load(helm(*args, "--show-only", "templates/notes.yaml").stdout)["notes"]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/shiftboss" in notes
    assert "kubectl -n team-a apply -f - <<'YAML'" in notes
    assert "kind: WorkerPool" in notes and "kind: Job" in notes
    assert "kubectl -n team-a wait sbjob/hello --for=condition=Complete" in notes
    assert "serves the namespaces team-a" in notes


def test_image_defaults_to_the_app_version():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    container = operator_container(render())
    assert container["image"] == f"ghcr.io/shiftboss/shiftboss-operator:{chart['appVersion']}"
    assert operator_container(render(**{"image.tag": "e2e"}))["image"].endswith(":e2e")
