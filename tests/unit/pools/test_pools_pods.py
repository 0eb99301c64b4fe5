"""The worker Pod manifest and the template hash (pure, no cluster)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest

from shiftboss.api.workerpool import WorkerPool, WorkerPoolSpec
from shiftboss.pools import pods
from shiftboss.pools.pods import (
    HASH_LABEL,
    HEALTH_PORT,
    OPERATOR_ENV,
    POD_REVISION,
    POOL_LABEL,
    TEMPLATE_FIELDS,
    TOKEN_AUDIENCE,
    TOKEN_DIR,
    template_hash,
    worker_pod,
)

OPERATOR_URL = "http://shiftboss.shiftboss-system.svc:8081"
CA_DATA = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"
#: What the operator always sets (SHIFTBOSS_CA_DATA only with a CA to give).
ALWAYS_SET = [name for name in OPERATOR_ENV if name != "SHIFTBOSS_CA_DATA"]


def make_pool(**spec: Any) -> WorkerPool:
    body: dict[str, Any] = {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {
            "name": "resize",
            "namespace": "media",
            "uid": "0b8f7c1e-1111-2222-3333-444455556666",
            "generation": 3,
        },
        "spec": {"image": "registry.example.com/resize:1.4.0", "app": "app:worker", **spec},
    }
    return WorkerPool.model_validate(body)


def build(pool: WorkerPool, hash_: str = "abcdef0123") -> dict[str, Any]:
    return worker_pod(pool, operator_url=OPERATOR_URL, template_hash=hash_)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["containers"]
    return only


def env_of(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return container(manifest)["env"]


def env_named(manifest: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in env_of(manifest) if e["name"] == name]


# --- constants ---------------------------------------------------------------------------


def test_constants() -> None:
    assert POOL_LABEL == "shiftboss.io/pool"
    assert HASH_LABEL == "shiftboss.io/template-hash"
    assert TOKEN_AUDIENCE == "shiftboss"
    assert TOKEN_DIR == "/var/run/secrets/shiftboss"
    assert HEALTH_PORT == 8080


# --- metadata ----------------------------------------------------------------------------


def test_metadata_name_namespace_labels() -> None:
    manifest = build(make_pool(), "0123456789")
    assert manifest["apiVersion"] == "v1"
    assert manifest["kind"] == "Pod"
    meta = manifest["metadata"]
    assert meta["generateName"] == "resize-0123456789-"
    assert "name" not in meta
    assert meta["namespace"] == "media"
    assert meta["labels"] == {
        "shiftboss.io/pool": "resize",
        "shiftboss.io/template-hash": "0123456789",
        "app.kubernetes.io/managed-by": "shiftboss",
        "app.kubernetes.io/name": "shiftboss-worker",
    }


def test_owner_reference_makes_the_pool_the_controller() -> None:
    manifest = build(make_pool())
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "shiftboss.io/v1alpha1",
            "kind": "WorkerPool",
            "name": "resize",
            "uid": "0b8f7c1e-1111-2222-3333-444455556666",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


@pytest.mark.parametrize("missing", ["uid", "namespace", "name"])
def test_pool_without_identity_is_refused(missing: str) -> None:
    pool = make_pool()
    del pool.metadata[missing]
    with pytest.raises(ValueError, match=f"metadata.{missing}"):
        build(pool)


# --- pod spec ----------------------------------------------------------------------------


def test_pod_spec_basics() -> None:
    manifest = build(make_pool(serviceAccountName="resizer", drainTimeoutSeconds=30))
    spec = manifest["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "resizer"
    assert spec["terminationGracePeriodSeconds"] == 30 + 5 + 10
    assert container(manifest)["terminationMessagePolicy"] == "FallbackToLogsOnError"
    for absent in ("nodeSelector", "tolerations", "affinity"):
        assert absent not in spec


@pytest.mark.parametrize(
    ("drain", "cancel_grace", "grace"),
    [
        # The drain timeout, then the cancel grace for what still runs, then 10 s to
        # hand it back (release) before SIGKILL.
        (60, None, 60 + 5 + 10),
        (0, None, 0 + 5 + 10),
        (30, 0.0, 30 + 0 + 10),
        (30, 2.5, 30 + 3 + 10),  # rounded up: never less than the runtime waits
    ],
)
def test_grace_period_leaves_room_after_the_drain_timeout(
    drain: int, cancel_grace: float | None, grace: int
) -> None:
    pool = make_pool(drainTimeoutSeconds=drain)
    extra = {} if cancel_grace is None else {"cancel_grace_seconds": cancel_grace}
    manifest = worker_pod(pool, operator_url=OPERATOR_URL, template_hash="abcdef0123", **extra)
    assert manifest["spec"]["terminationGracePeriodSeconds"] == grace
    assert pods.grace_period_seconds(pool, **extra) == grace


def test_scheduling_fields_when_set() -> None:
    tolerations = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    }
    pool = make_pool(nodeSelector={"pool": "gpu"}, tolerations=tolerations, affinity=affinity)
    spec = build(pool)["spec"]
    assert spec["nodeSelector"] == {"pool": "gpu"}
    assert spec["tolerations"] == tolerations
    assert spec["affinity"] == affinity


def test_manifest_does_not_alias_the_pool() -> None:
    pool = make_pool(
        tolerations=[{"key": "a", "operator": "Exists"}],
        affinity={"podAffinity": {}},
        env=[{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    )
    before = pool.model_dump()
    manifest = build(pool)
    manifest["spec"]["tolerations"][0]["key"] = "changed"
    manifest["spec"]["affinity"]["changed"] = True
    env_named(manifest, "S")[0]["valueFrom"]["secretKeyRef"]["name"] = "changed"
    assert pool.model_dump() == before


def test_manifest_is_plain_json() -> None:
    manifest = build(make_pool(resources={"requests": {"cpu": "500m", "memory": 1024}}))
    assert json.loads(json.dumps(manifest)) == manifest


# --- container ---------------------------------------------------------------------------


def test_container_image_command_ports_probe_mounts() -> None:
    c = container(build(make_pool(app="acme.jobs.resize:worker")))
    assert c["name"] == "worker"
    assert c["image"] == "registry.example.com/resize:1.4.0"
    assert c["command"] == ["shiftboss-worker", "run", "--app", "acme.jobs.resize:worker"]
    assert c["ports"] == [{"name": "health", "containerPort": 8080}]
    assert c["readinessProbe"] == {
        "httpGet": {"path": "/readyz", "port": "health"},
        "periodSeconds": 2,
        "failureThreshold": 3,
    }
    assert c["volumeMounts"] == [
        {"name": "shiftboss-token", "mountPath": "/var/run/secrets/shiftboss", "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    assert "resources" not in c


def test_the_pod_meets_pod_security_restricted() -> None:
    """What a namespace enforcing ``restricted`` demands (the integration test
    test_pod_security.py shows the API server admitting it)."""
    manifest = build(make_pool())
    assert manifest["spec"]["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(manifest)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # A read-only root filesystem: Python and tools write their temporary files here.
    assert {"name": "tmp", "emptyDir": {}} in manifest["spec"]["volumes"]
    # Each manifest has its own copy: changing one pod changes no other.
    container(manifest)["securityContext"]["capabilities"]["drop"].append("more")
    assert container(build(make_pool()))["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_token_volume_is_a_projected_token_with_the_shiftboss_audience() -> None:
    assert build(make_pool())["spec"]["volumes"][:1] == [
        {
            "name": "shiftboss-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "shiftboss",
                            "expirationSeconds": 3600,
                            "path": "token",
                        }
                    }
                ]
            },
        }
    ]


def test_resources_when_set() -> None:
    pool = make_pool(resources={"requests": {"cpu": "500m"}, "limits": {"memory": "1Gi"}})
    assert container(build(pool))["resources"] == {
        "requests": {"cpu": "500m"},
        "limits": {"memory": "1Gi"},
    }
    only_limits = make_pool(resources={"limits": {"memory": "1Gi"}})
    assert container(build(only_limits))["resources"] == {"limits": {"memory": "1Gi"}}
    assert "resources" not in container(build(make_pool(resources={})))


def test_operator_env() -> None:
    manifest = build(make_pool(concurrency=4, drainTimeoutSeconds=45))
    env = {e["name"]: e for e in env_of(manifest)}
    assert env["SHIFTBOSS_OPERATOR_URL"] == {
        "name": "SHIFTBOSS_OPERATOR_URL",
        "value": OPERATOR_URL,
    }
    assert env["SHIFTBOSS_POOL"] == {"name": "SHIFTBOSS_POOL", "value": "resize"}
    assert env["SHIFTBOSS_WORKER_ID"] == {
        "name": "SHIFTBOSS_WORKER_ID",
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
    }
    assert env["SHIFTBOSS_POD_IP"] == {
        "name": "SHIFTBOSS_POD_IP",
        "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
    }
    assert env["SHIFTBOSS_TOKEN_FILE"]["value"] == "/var/run/secrets/shiftboss/token"
    assert env["SHIFTBOSS_CONCURRENCY"]["value"] == "4"
    assert env["SHIFTBOSS_DRAIN_TIMEOUT_SECONDS"]["value"] == "45"
    assert env["SHIFTBOSS_HEALTH_PORT"]["value"] == "8080"
    assert set(ALWAYS_SET) <= set(env)
    assert "SHIFTBOSS_CA_DATA" not in env  # no CA given: workers trust the system's CAs
    # Every env value is a string, as the API server requires.
    for entry in env.values():
        assert set(entry) in ({"name", "value"}, {"name", "valueFrom"})
        if "value" in entry:
            assert isinstance(entry["value"], str)


def test_user_env_first_serialised_as_kubernetes_expects() -> None:
    pool = make_pool(
        env=[
            {"name": "B_FIRST", "value": "1"},
            {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
            {"name": "EMPTY"},
            {"name": "SHIFTBOSS_LOG_LEVEL", "value": "DEBUG"},
        ]
    )
    env = env_of(build(pool))
    assert env[:4] == [
        {"name": "B_FIRST", "value": "1"},
        {"name": "SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "EMPTY"},
        # Not one the operator sets: the pool may choose it.
        {"name": "SHIFTBOSS_LOG_LEVEL", "value": "DEBUG"},
    ]
    assert [e["name"] for e in env[4:]] == ALWAYS_SET
    assert all("value_from" not in e for e in env)


def test_the_operator_gives_workers_its_ca() -> None:
    manifest = worker_pod(
        make_pool(), operator_url=OPERATOR_URL, template_hash="abcdef0123", ca_data=CA_DATA
    )
    assert env_named(manifest, "SHIFTBOSS_CA_DATA") == [
        {"name": "SHIFTBOSS_CA_DATA", "value": CA_DATA}
    ]
    assert [e["name"] for e in env_of(manifest)] == list(OPERATOR_ENV)


def test_user_env_cannot_override_operator_variables() -> None:
    pool = make_pool(
        env=[
            {"name": "SHIFTBOSS_CA_DATA", "value": "a CA of the pool's own"},
            {"name": "SHIFTBOSS_POOL", "value": "someone-elses-pool"},
            {"name": "SHIFTBOSS_TOKEN_FILE", "value": "/tmp/stolen"},
            {"name": "SHIFTBOSS_OPERATOR_URL", "value": "http://evil:1"},
            {"name": "SHIFTBOSS_WORKER_ID", "value": "fixed"},
            {"name": "KEEP", "value": "yes"},
        ]
    )
    manifest = build(pool)
    assert env_named(manifest, "SHIFTBOSS_POOL") == [{"name": "SHIFTBOSS_POOL", "value": "resize"}]
    assert env_named(manifest, "SHIFTBOSS_TOKEN_FILE") == [
        {"name": "SHIFTBOSS_TOKEN_FILE", "value": f"{TOKEN_DIR}/token"}
    ]
    assert env_named(manifest, "SHIFTBOSS_OPERATOR_URL")[0]["value"] == OPERATOR_URL
    assert len(env_named(manifest, "SHIFTBOSS_WORKER_ID")) == 1
    assert "valueFrom" in env_named(manifest, "SHIFTBOSS_WORKER_ID")[0]
    assert env_named(manifest, "KEEP") == [{"name": "KEEP", "value": "yes"}]
    # Reserved even when the operator has no CA to give: workers trust what it says.
    assert env_named(manifest, "SHIFTBOSS_CA_DATA") == []
    names = [e["name"] for e in env_of(manifest)]
    assert len(names) == len(set(names)), "no env name may appear twice"


def test_the_worker_runtime_reads_what_the_pod_sets() -> None:
    """The pod's env, resolved as the kubelet would, configures a worker."""
    config_mod = pytest.importorskip("worker_runtime.config")
    runtime_vars = {var for var, _hint in config_mod.ENV_VARS.values()}
    assert set(OPERATOR_ENV) <= runtime_vars

    manifest = worker_pod(
        make_pool(concurrency=3, drainTimeoutSeconds=15),
        operator_url="https://shiftboss.shiftboss-system.svc:8081",
        template_hash="abcdef0123",
        ca_data=CA_DATA,
    )
    pod_name = "resize-abcdef0123-x7k2p"
    field_values = {"metadata.name": pod_name, "status.podIP": "10.1.2.3"}
    environ = {}
    for entry in env_of(manifest):
        if "valueFrom" in entry:
            environ[entry["name"]] = field_values[entry["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            environ[entry["name"]] = entry.get("value", "")
    config = config_mod.WorkerConfig.from_env(environ)
    assert config.operator_url == "https://shiftboss.shiftboss-system.svc:8081"
    assert config.ca_data == CA_DATA.strip()
    assert config.pool == "resize"
    assert config.worker_id == pod_name
    assert str(config.token_file) == f"{TOKEN_DIR}/token"
    assert config.concurrency == 3
    assert config.drain_timeout_seconds == 15
    assert config.health_port == HEALTH_PORT
    assert config.pod_ip == "10.1.2.3"


# --- template hash -----------------------------------------------------------------------


def test_hash_is_ten_hex_chars_and_stable() -> None:
    h = template_hash(make_pool(), OPERATOR_URL)
    assert re.fullmatch(r"[0-9a-f]{10}", h)
    assert template_hash(make_pool(), OPERATOR_URL) == h
    # A pool loaded from its own manifest (camelCase, with defaults written) hashes the same.
    reloaded = WorkerPool.model_validate(make_pool().to_manifest())
    assert template_hash(reloaded, OPERATOR_URL) == h


def test_hash_does_not_depend_on_dict_order() -> None:
    a = make_pool(nodeSelector={"a": "1", "b": "2"}, affinity={"x": {"p": 1, "q": 2}})
    b = make_pool(nodeSelector={"b": "2", "a": "1"}, affinity={"x": {"q": 2, "p": 1}})
    assert template_hash(a, OPERATOR_URL) == template_hash(b, OPERATOR_URL)


@pytest.mark.parametrize(
    "change",
    [
        {"image": "registry.example.com/resize:1.5.0"},
        {"app": "app:other"},
        {"env": [{"name": "A", "value": "1"}]},
        {"resources": {"limits": {"memory": "1Gi"}}},
        {"nodeSelector": {"pool": "gpu"}},
        {"tolerations": [{"key": "gpu", "operator": "Exists"}]},
        {"affinity": {"podAntiAffinity": {}}},
        {"serviceAccountName": "other"},
        {"concurrency": 8},
        {"drainTimeoutSeconds": 5},
    ],
    ids=lambda c: next(iter(c)),
)
def test_hash_changes_with_what_shapes_the_pod(change: dict[str, Any]) -> None:
    assert template_hash(make_pool(**change), OPERATOR_URL) != template_hash(
        make_pool(), OPERATOR_URL
    )


def test_hash_changes_with_env_value_and_order() -> None:
    one = make_pool(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    value = make_pool(env=[{"name": "A", "value": "9"}, {"name": "B", "value": "2"}])
    order = make_pool(env=[{"name": "B", "value": "2"}, {"name": "A", "value": "1"}])
    hashes = {template_hash(p, OPERATOR_URL) for p in (one, value, order)}
    assert len(hashes) == 3


def test_hash_changes_with_operator_url() -> None:
    pool = make_pool()
    assert template_hash(pool, OPERATOR_URL) != template_hash(pool, "http://other:8081")


def test_hash_changes_with_the_ca_given_to_workers() -> None:
    """A rotated CA rolls the workers, which read it only at start."""
    pool = make_pool()
    without = template_hash(pool, OPERATOR_URL)
    assert template_hash(pool, OPERATOR_URL, None) == without
    one, other = (template_hash(pool, OPERATOR_URL, ca) for ca in (CA_DATA, CA_DATA + "\n"))
    assert len({without, one, other}) == 3


def test_hash_changes_with_the_pod_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new shape of the pod for the same spec (Pod Security ``restricted``) rolls the
    workers to it, once."""
    before = template_hash(make_pool(), OPERATOR_URL)
    monkeypatch.setattr(pods, "POD_REVISION", POD_REVISION + 1)
    assert template_hash(make_pool(), OPERATOR_URL) != before


@pytest.mark.parametrize("change", [{"replicas": 7}, {"replicas": 0}, {"paused": True}])
def test_hash_ignores_scaling_and_pausing(change: dict[str, Any]) -> None:
    assert template_hash(make_pool(**change), OPERATOR_URL) == template_hash(
        make_pool(), OPERATOR_URL
    )


def test_hash_ignores_metadata_and_status() -> None:
    pool = make_pool()
    other = copy.deepcopy(pool)
    other.metadata["generation"] = 99
    other.metadata["labels"] = {"team": "media"}
    assert template_hash(other, OPERATOR_URL) == template_hash(pool, OPERATOR_URL)


def test_every_spec_field_is_classified() -> None:
    """A new spec field must be added to TEMPLATE_FIELDS (it rolls the pods) or to the
    fields below (it does not): otherwise changing it would silently not roll pods."""
    not_in_template = {"replicas", "paused"}
    assert set(WorkerPoolSpec.model_fields) == set(TEMPLATE_FIELDS) | not_in_template


def test_label_helper_matches_manifest() -> None:
    manifest = build(make_pool(), "ffffffffff")
    assert manifest["metadata"]["labels"] == pods.pod_labels("resize", "ffffffffff")
