"""WorkerPool pods: their manifest, the plan that scales and rolls them, the pool's status.

``pods`` and ``plan`` are pure (no I/O, no Kubernetes client, no kopf);
``controller.PoolController`` applies them: it lists the pool's pods, turns them into
:class:`PodView` objects, asks :func:`plan` what to create and delete, builds new pods
with :func:`worker_pod`, and writes :func:`pool_status` when :func:`status_changed` says so.
"""

from .plan import FINISHED_PHASES, Plan, PodView, plan, pool_status, status_changed
from .pods import (
    HASH_LABEL,
    HEALTH_PORT,
    OPERATOR_ENV,
    POOL_LABEL,
    TEMPLATE_FIELDS,
    TOKEN_AUDIENCE,
    TOKEN_DIR,
    pod_labels,
    template_hash,
    worker_pod,
)

__all__ = [
    "FINISHED_PHASES",
    "HASH_LABEL",
    "HEALTH_PORT",
    "OPERATOR_ENV",
    "POOL_LABEL",
    "TEMPLATE_FIELDS",
    "TOKEN_AUDIENCE",
    "TOKEN_DIR",
    "Plan",
    "PodView",
    "plan",
    "pod_labels",
    "pool_status",
    "status_changed",
    "template_hash",
    "worker_pod",
]
