"""The Pod manifest of a WorkerPool's workers, and the hash of its template.

Pure functions: no I/O, no Kubernetes client.  The reconciler creates pods from
:func:`worker_pod` and compares the ``shiftboss.io/template-hash`` label of the pods it
finds with :func:`template_hash` to know which ones are outdated.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

from shiftboss.api.common import API_GROUP_VERSION
from shiftboss.api.workerpool import OPERATOR_ENV, POOL_LABEL, WorkerPool

__all__ = [
    "HASH_LABEL",
    "HEALTH_PORT",
    "OPERATOR_ENV",
    "POD_REVISION",
    "POOL_LABEL",
    "TEMPLATE_FIELDS",
    "TOKEN_AUDIENCE",
    "TOKEN_DIR",
    "TOKEN_EXPIRATION_SECONDS",
    "TOKEN_VOLUME",
    "WORKER_CONTAINER",
    "WORKER_UID",
    "grace_period_seconds",
    "pod_labels",
    "template_hash",
    "worker_pod",
]

#: The label carrying the hash of the pod template a pod was made from.
HASH_LABEL = "shiftboss.io/template-hash"
#: The audience of the projected service-account token workers present to the operator.
TOKEN_AUDIENCE = "shiftboss"
#: Where the token is mounted in the worker container (the file is ``token``).
TOKEN_DIR = "/var/run/secrets/shiftboss"
#: Lifetime asked for the projected token; the kubelet refreshes it well before expiry.
TOKEN_EXPIRATION_SECONDS = 3600
#: Name of the projected token volume.
TOKEN_VOLUME = "shiftboss-token"
#: Port of the worker's health server (``/healthz``, ``/readyz``, ``/metrics``).
HEALTH_PORT = 8080
#: Name of the one container of a worker pod.
WORKER_CONTAINER = "worker"
#: The non-root user (and group) workers run as: the worker base image's own.
WORKER_UID = 65532
#: The writable scratch volume at ``/tmp``: the root filesystem is read-only.
TMP_VOLUME = "tmp"
#: The revision of the pod this module builds from a spec, part of the template hash:
#: bumped when that pod changes (2: Pod Security ``restricted``), so workers roll to it.
POD_REVISION = 2
#: After its drain timeout a worker stops what still runs, giving each skill the
#: operator's cancel grace (this is the operator's default)...
DEFAULT_CANCEL_GRACE_SECONDS = 5.0
#: ...then hands those attempts back and exits: seconds allowed for that.
REPORT_SECONDS = 10

#: The spec fields (Python names) that shape a worker pod: a change to any of them rolls
#: the pool's pods.  ``replicas`` and ``paused`` are deliberately absent: scaling or
#: pausing dispatch must never replace a worker.
TEMPLATE_FIELDS: tuple[str, ...] = (
    "image",
    "app",
    "env",
    "resources",
    "node_selector",
    "tolerations",
    "affinity",
    "service_account_name",
    "concurrency",
    "drain_timeout_seconds",
)

#: Pod Security ``restricted``: what a namespace enforcing it demands of every pod.
POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": WORKER_UID,
    "runAsGroup": WORKER_UID,
    "fsGroup": WORKER_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _pool_name(pool: WorkerPool) -> str:
    name = pool.name
    if not name:
        raise ValueError("the WorkerPool has no metadata.name")
    return name


def template_hash(pool: WorkerPool, operator_url: str, ca_data: str | None = None) -> str:
    """10 hex characters of the SHA-256 of everything that shapes a worker pod.

    The input is a canonical JSON document (sorted keys, no whitespace) of the
    :data:`TEMPLATE_FIELDS` of the spec, in their wire (camelCase) form, the operator
    URL the workers connect to, the CA bundle they verify it with (a rotated CA rolls
    the workers) and :data:`POD_REVISION`.  Fields that are unset (``None``) are left
    out, so adding an optional field to the model does not roll existing pools.
    """
    spec = pool.spec.model_dump(
        mode="json", by_alias=True, exclude_none=True, include=set(TEMPLATE_FIELDS)
    )
    document: dict[str, Any] = {
        "spec": spec,
        "operatorUrl": operator_url,
        "podRevision": POD_REVISION,
    }
    if ca_data is not None:
        document["caData"] = ca_data
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:10]


def pod_labels(pool_name: str, hash_: str) -> dict[str, str]:
    """The labels of a worker pod of pool ``pool_name`` made from template ``hash_``."""
    return {
        POOL_LABEL: pool_name,
        HASH_LABEL: hash_,
        "app.kubernetes.io/managed-by": "shiftboss",
        "app.kubernetes.io/name": "shiftboss-worker",
    }


def _user_env(pool: WorkerPool) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    for var in pool.spec.env:
        # The operator's variables (OPERATOR_ENV) are not overridable.  The CRD refuses
        # them, but a pool stored before that rule (or kept by ratcheting) may still
        # carry one: it is dropped here (instead of being listed twice, where the API
        # server only warns and the last one silently wins).
        if var.name in OPERATOR_ENV:
            continue
        entry: dict[str, Any] = {"name": var.name}
        if var.value_from is not None:
            entry["valueFrom"] = var.value_from.model_dump(
                by_alias=True, exclude_none=True, mode="json"
            )
        elif var.value is not None:
            entry["value"] = var.value
        env.append(entry)
    return env


def _operator_env(pool: WorkerPool, operator_url: str, ca_data: str | None) -> list[dict[str, Any]]:
    spec = pool.spec
    env: list[dict[str, Any]] = [
        {"name": "SHIFTBOSS_OPERATOR_URL", "value": operator_url},
        {"name": "SHIFTBOSS_POOL", "value": _pool_name(pool)},
        {
            "name": "SHIFTBOSS_WORKER_ID",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
        },
        {
            "name": "SHIFTBOSS_POD_IP",
            "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}},
        },
        {"name": "SHIFTBOSS_TOKEN_FILE", "value": f"{TOKEN_DIR}/token"},
        {"name": "SHIFTBOSS_CONCURRENCY", "value": str(spec.concurrency)},
        {"name": "SHIFTBOSS_DRAIN_TIMEOUT_SECONDS", "value": str(spec.drain_timeout_seconds)},
        {"name": "SHIFTBOSS_HEALTH_PORT", "value": str(HEALTH_PORT)},
    ]
    if ca_data is not None:
        env.append({"name": "SHIFTBOSS_CA_DATA", "value": ca_data})
    return env


def _resources(pool: WorkerPool) -> dict[str, Any] | None:
    if pool.spec.resources is None:
        return None
    dumped = pool.spec.resources.model_dump(mode="json", by_alias=True, exclude_none=True)
    resources = {key: value for key, value in dumped.items() if value}
    return resources or None


def grace_period_seconds(
    pool: WorkerPool, cancel_grace_seconds: float = DEFAULT_CANCEL_GRACE_SECONDS
) -> int:
    """The worker pod's ``terminationGracePeriodSeconds``: the pool's drain timeout, then
    the cancel grace for what still runs, then time to hand it back, before SIGKILL."""
    return pool.spec.drain_timeout_seconds + math.ceil(cancel_grace_seconds) + REPORT_SECONDS


def worker_pod(
    pool: WorkerPool,
    *,
    operator_url: str,
    template_hash: str,
    ca_data: str | None = None,
    cancel_grace_seconds: float = DEFAULT_CANCEL_GRACE_SECONDS,
) -> dict[str, Any]:
    """The Pod manifest of one worker of ``pool`` (made from template ``template_hash``).

    ``ca_data``: the PEM CA bundle that workers verify the operator's certificate with
    (``SHIFTBOSS_CA_DATA``).  The pod passes Pod Security ``restricted``: non-root,
    RuntimeDefault seccomp, no privilege escalation, no capabilities, a read-only root
    filesystem with an emptyDir at ``/tmp``.

    The name is generated by the API server from ``<pool>-<hash>-``; the pod is owned by
    the pool (deleting the pool deletes its pods).  ``restartPolicy`` is ``Never``: a
    worker that exits (crashed, or drained and done) is replaced by the operator with a
    new pod, possibly of a newer template, instead of being restarted in place (with a
    back-off when workers keep exiting).  ``FallbackToLogsOnError`` keeps the last lines
    a failed worker wrote in its pod's status, where the operator reads its exit reason.
    """
    name = _pool_name(pool)
    if not pool.namespace:
        raise ValueError(f"WorkerPool {name} has no metadata.namespace")
    if not pool.uid:
        raise ValueError(f"WorkerPool {name} has no metadata.uid (read it from the API server)")
    spec = pool.spec

    container: dict[str, Any] = {
        "name": WORKER_CONTAINER,
        "image": spec.image,
        "command": ["shiftboss-worker", "run", "--app", spec.app],
        "env": _user_env(pool) + _operator_env(pool, operator_url, ca_data),
        "ports": [{"name": "health", "containerPort": HEALTH_PORT}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "health"},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
        "volumeMounts": [
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
    }
    resources = _resources(pool)
    if resources is not None:
        container["resources"] = resources

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": spec.service_account_name,
        "terminationGracePeriodSeconds": grace_period_seconds(pool, cancel_grace_seconds),
        "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
        "containers": [container],
        "volumes": [
            {
                "name": TOKEN_VOLUME,
                "projected": {
                    "sources": [
                        {
                            "serviceAccountToken": {
                                "audience": TOKEN_AUDIENCE,
                                "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                                "path": "token",
                            }
                        }
                    ]
                },
            },
            {"name": TMP_VOLUME, "emptyDir": {}},
        ],
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = copy.deepcopy(spec.tolerations)
    if spec.affinity:
        pod_spec["affinity"] = copy.deepcopy(spec.affinity)

    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": f"{name}-{template_hash}-",
            "namespace": pool.namespace,
            "labels": pod_labels(name, template_hash),
            "ownerReferences": [
                {
                    "apiVersion": API_GROUP_VERSION,
                    "kind": "WorkerPool",
                    "name": name,
                    "uid": pool.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }
