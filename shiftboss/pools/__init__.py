"""WorkerPool pods: their manifest, the plan that scales and rolls them, the pool's status.

``pods``, ``podview``, ``exits``, ``health``, ``plan`` and ``status`` are pure (no I/O,
no Kubernetes client, no kopf); ``controller.PoolController`` applies them: it lists
the pool's pods, turns them into :class:`PodView` objects, keeps the pool's
:class:`PoolHealth` (back-offs), asks :func:`plan` what to create and delete, builds
new pods with :func:`worker_pod`, and writes :func:`pool_status` when
:func:`status_changed` says so.
"""

from .exits import WorkerExit, last_error_line, worker_exit
from .health import POD_CREATE_FAILED, WORKER_CRASH_LOOP, PoolHealth, Trouble
from .plan import Plan, plan
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
from .podview import FINISHED_PHASES, PodView
from .status import pool_status, status_changed

__all__ = [
    "FINISHED_PHASES",
    "HASH_LABEL",
    "HEALTH_PORT",
    "OPERATOR_ENV",
    "POD_CREATE_FAILED",
    "POOL_LABEL",
    "TEMPLATE_FIELDS",
    "TOKEN_AUDIENCE",
    "TOKEN_DIR",
    "WORKER_CRASH_LOOP",
    "Plan",
    "PodView",
    "PoolHealth",
    "Trouble",
    "WorkerExit",
    "last_error_line",
    "plan",
    "pod_labels",
    "pool_status",
    "status_changed",
    "template_hash",
    "worker_exit",
    "worker_pod",
]
