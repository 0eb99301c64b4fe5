"""The custom resources of Shiftboss (group ``shiftboss.io``, version ``v1alpha1``).

The pydantic models here are the single source of truth of the API: the CRDs in
``crds/`` are generated from them by ``python -m shiftboss.api.crdgen crds/``
(``make crds``), and the operator loads the objects it watches with them::

    pool = WorkerPool.model_validate(body)            # body as the API server returns it
    patch = {"status": status.model_dump(by_alias=True, exclude_none=True, mode="json")}
"""

from .common import (
    API_GROUP,
    API_GROUP_VERSION,
    API_VERSION,
    CATEGORY,
    ApiModel,
    Condition,
    ConditionStatus,
    CrdInfo,
    PrinterColumn,
    Resource,
    ScaleSubresource,
    format_timestamp,
    get_condition,
    set_condition,
    utcnow,
)
from .job import (
    MAX_ATTEMPT_HISTORY,
    TERMINAL_PHASES,
    AttemptOutcome,
    AttemptRecord,
    Job,
    JobError,
    JobPhase,
    JobProgress,
    JobSpec,
    JobStatus,
    format_duration,
    is_terminal,
)
from .retry import Backoff, RetryPolicy
from .workerpool import (
    POOL_LABEL,
    EnvVar,
    PoolConditionType,
    ResourceRequirements,
    WorkerPool,
    WorkerPoolSpec,
    WorkerPoolStatus,
    selector_for,
)

__all__ = [
    "API_GROUP",
    "API_GROUP_VERSION",
    "API_VERSION",
    "CATEGORY",
    "MAX_ATTEMPT_HISTORY",
    "POOL_LABEL",
    "TERMINAL_PHASES",
    "ApiModel",
    "AttemptOutcome",
    "AttemptRecord",
    "Backoff",
    "Condition",
    "ConditionStatus",
    "CrdInfo",
    "EnvVar",
    "Job",
    "JobError",
    "JobPhase",
    "JobProgress",
    "JobSpec",
    "JobStatus",
    "PoolConditionType",
    "PrinterColumn",
    "Resource",
    "ResourceRequirements",
    "RetryPolicy",
    "ScaleSubresource",
    "WorkerPool",
    "WorkerPoolSpec",
    "WorkerPoolStatus",
    "format_duration",
    "format_timestamp",
    "get_condition",
    "is_terminal",
    "selector_for",
    "set_condition",
    "utcnow",
]
