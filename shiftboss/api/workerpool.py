"""The ``WorkerPool`` resource: a set of long-running worker pods of one image and app."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import ConfigDict, Field, WithJsonSchema, model_validator

from .common import (
    DNS1123_LABEL,
    DNS1123_LABEL_MAX,
    DNS1123_SUBDOMAIN,
    DNS1123_SUBDOMAIN_WORDS,
    ApiModel,
    Condition,
    CrdInfo,
    PrinterColumn,
    Resource,
    ScaleSubresource,
    cel,
    conditions_schema_extra,
    validations,
)
from .forms import Matching

#: The label every pod of a pool carries, with the pool's name as its value.
POOL_LABEL = "shiftboss.io/pool"

#: ``module:attr`` (dotted module path, colon, dotted attribute path), as ``--app`` takes.
APP_PATTERN = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*"
    r":[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)

#: A Kubernetes resource quantity in its string form ("500m", "1Gi", "2"); no minus
#: sign, since a negative request or limit is never valid for a container.
QUANTITY_PATTERN = (
    r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

_QUANTITY_FORM = Matching(
    QUANTITY_PATTERN,
    "a quantity: a number with an optional suffix (m, k, M, G, Ki, Mi, Gi, ...), "
    "for example 500m, 1Gi or 2",
    max_length=64,
)

#: An environment variable name as Kubernetes 1.34+ accepts it: printable ASCII but '='.
ENV_NAME_PATTERN = r"^[ -<>-~]+$"

#: The environment variables the operator sets on every worker: what makes a worker talk
#: to the right operator for the right pool with the right identity.  The CRD refuses
#: them in a pool's ``env``; the pod builder still drops them (objects stored before).
OPERATOR_ENV: tuple[str, ...] = (
    "SHIFTBOSS_OPERATOR_URL",
    "SHIFTBOSS_POOL",
    "SHIFTBOSS_WORKER_ID",
    "SHIFTBOSS_POD_IP",
    "SHIFTBOSS_TOKEN_FILE",
    "SHIFTBOSS_CONCURRENCY",
    "SHIFTBOSS_DRAIN_TIMEOUT_SECONDS",
    "SHIFTBOSS_HEALTH_PORT",
    "SHIFTBOSS_CA_DATA",
)

#: A resource quantity: an integer or a quantity string.
Quantity = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, _QUANTITY_FORM],
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            **_QUANTITY_FORM.json_schema(),  # applies to strings
            "minimum": 0,  # applies to integers
            "description": "A quantity: an integer or a string such as 500m, 1Gi, 2.",
        }
    ),
]

#: Resource names per requests or limits map: bounded, so that CEL rules on the
#: quantities fit the API server's cost budget.
MAX_RESOURCE_NAMES = 32


def selector_for(pool: str) -> str:
    """The label selector (string form) that matches the pods of pool ``pool``."""
    return f"{POOL_LABEL}={pool}"


class PoolConditionType(StrEnum):
    """The condition types of a WorkerPool's status."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    #: kstatus: present (True) only while the pool converges; same as Progressing True.
    RECONCILING = "Reconciling"
    #: kstatus: present (True) only while the pool cannot converge; same as Degraded True.
    STALLED = "Stalled"


_REF: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


class EnvVarSource(ApiModel):
    """Where an environment variable's value comes from: exactly one source, as in a Pod."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "[has(self.secretKeyRef), has(self.configMapKeyRef), has(self.fieldRef), "
                "has(self.resourceFieldRef)].filter(x, x).size() == 1",
                "env[].valueFrom needs exactly one of secretKeyRef, configMapKeyRef, "
                "fieldRef or resourceFieldRef",
            )
        )
    )

    secret_key_ref: dict[str, Any] | None = Field(
        None,
        description="A key of a Secret in the pool's namespace (name, key, optional).",
        json_schema_extra=_REF,
    )
    config_map_key_ref: dict[str, Any] | None = Field(
        None,
        description="A key of a ConfigMap in the pool's namespace (name, key, optional).",
        json_schema_extra=_REF,
    )
    field_ref: dict[str, Any] | None = Field(
        None,
        description="A field of the worker's pod, e.g. fieldPath: metadata.name.",
        json_schema_extra=_REF,
    )
    resource_field_ref: dict[str, Any] | None = Field(
        None,
        description="A resource of the worker container, e.g. resource: limits.cpu.",
        json_schema_extra=_REF,
    )


class EnvVar(ApiModel):
    """An environment variable of the worker container, as in a Pod's env."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                "!has(self.valueFrom) || !has(self.value) || size(self.value) == 0",
                "env[].value and env[].valueFrom are mutually exclusive: "
                "set only one of them for each variable",
            ),
            cel(
                "!(self.name in [" + ", ".join(f"'{name}'" for name in OPERATOR_ENV) + "])",
                "spec.env must not set the variables the operator sets on every worker "
                f"({', '.join(OPERATOR_ENV)})",
                message_expression=(
                    "self.name + ' is set by the operator on every worker (it connects the "
                    "worker to its operator and pool) and cannot be overridden: remove it "
                    "from spec.env'"
                ),
                field_path=".name",
                reason="FieldValueForbidden",
            ),
        )
    )

    name: Annotated[
        str,
        Matching(
            ENV_NAME_PATTERN,
            "an environment variable name: printable ASCII characters other than '=' "
            "(for example LOG_LEVEL)",
            max_length=1024,
        ),
    ] = Field(
        description=(
            "Name of the environment variable (printable ASCII, no '='). The variables "
            f"the operator sets ({', '.join(OPERATOR_ENV)}) are refused."
        ),
    )
    value: str | None = Field(
        None,
        description="Value of the variable. Mutually exclusive with valueFrom.",
    )
    value_from: EnvVarSource | None = Field(
        None,
        description=(
            "Source of the variable's value, exactly as in a Pod's env[].valueFrom "
            "(secretKeyRef, configMapKeyRef, fieldRef, resourceFieldRef). "
            "Mutually exclusive with value."
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if self.value and self.value_from is not None:
            raise ValueError(
                "env[].value and env[].valueFrom are mutually exclusive: "
                "set only one of them for each variable"
            )
        return self


class ResourceRequirements(ApiModel):
    """Compute resources of each worker container, as in a Pod's resources."""

    requests: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_RESOURCE_NAMES,
        description=(
            "Minimum resources each worker needs, by resource name "
            "(for example cpu: 500m, memory: 256Mi); the scheduler places pods by them."
        ),
    )
    limits: dict[str, Quantity] = Field(
        default_factory=dict,
        max_length=MAX_RESOURCE_NAMES,
        description=(
            "Maximum resources each worker may use, by resource name (for example memory: 1Gi)."
        ),
    )


class WorkerPoolSpec(ApiModel):
    """The desired state of a WorkerPool."""

    image: str = Field(
        min_length=1,
        max_length=1024,
        description=(
            "Container image of the workers. It must contain the worker runtime and the "
            "app (for example registry.example.com/resize-worker:1.4.0)."
        ),
    )
    app: Annotated[
        str,
        Matching(
            APP_PATTERN,
            "module:attribute (a dotted module path, ':' and an attribute path, "
            "for example demo_worker:worker)",
            max_length=512,
            min_length=3,
        ),
    ] = Field(
        description=(
            "The worker object to run, as module:attribute (for example app:worker or "
            "acme.jobs.resize:worker); passed to `shiftboss-worker run --app`."
        ),
    )
    replicas: int = Field(
        1,
        ge=0,
        le=1000,
        description=(
            "Number of worker pods. Also set by `kubectl scale`. 0 keeps the pool "
            "defined but runs no worker."
        ),
    )
    concurrency: int = Field(
        1,
        ge=1,
        le=1024,
        description="How many jobs each worker runs at the same time.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=256,
        description="Environment variables of the worker container; names must be unique.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    resources: ResourceRequirements | None = Field(
        None,
        description="CPU, memory and other resources requested by and limited for each worker.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Labels a node must have for worker pods to be scheduled on it.",
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=64,
        description="Tolerations of the worker pods, exactly as in a Pod's spec.tolerations.",
    )
    affinity: dict[str, Any] | None = Field(
        None,
        description="Scheduling affinity of the worker pods, exactly as in a Pod's spec.affinity.",
    )
    service_account_name: Annotated[
        str, Matching(DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_WORDS, max_length=253)
    ] = Field(
        "default",
        description=(
            "Service account of the worker pods. Its projected token (audience shiftboss) "
            "is how a worker authenticates to the operator."
        ),
    )
    drain_timeout_seconds: int = Field(
        60,
        ge=0,
        le=86400,
        description=(
            "How long a busy worker may keep running its jobs after it is asked to stop "
            "(scale-down, rollout, pool deletion) before its pod is removed; jobs still "
            "running then are handed back and run again, without counting against their "
            "maxAttempts. The pod's grace period is this plus the cancel grace plus 10 s."
        ),
    )
    paused: bool = Field(
        False,
        description=(
            "When true no new jobs are dispatched to this pool; running jobs finish and "
            "queued jobs wait."
        ),
    )


class WorkerPoolStatus(ApiModel):
    """The observed state of a WorkerPool, written by the operator."""

    # model_dump(by_alias=True, exclude_none=True, mode="json") is a complete status
    # (counters and lists always included): build it from the current status.

    replicas: int = Field(
        0,
        ge=0,
        description="Desired number of worker pods the operator is working towards.",
    )
    ready_replicas: int = Field(
        0,
        ge=0,
        description="Worker pods that are running and registered with the operator.",
    )
    busy_workers: int = Field(
        0,
        ge=0,
        description="Workers running at least one job.",
    )
    queued_jobs: int = Field(
        0,
        ge=0,
        description="Jobs of this pool waiting for a free worker.",
    )
    running_jobs: int = Field(
        0,
        ge=0,
        description="Jobs of this pool running now.",
    )
    selector: str | None = Field(
        None,
        max_length=1024,
        description=(
            "Label selector of the pool's pods in string form "
            "(shiftboss.io/pool=<name>), for the scale subresource."
        ),
    )
    template_hash: str | None = Field(
        None,
        max_length=64,
        description="Hash of the current pod template; pods are named <pool>-<hash>-<suffix>.",
    )
    observed_generation: int | None = Field(
        None,
        ge=0,
        description="The metadata.generation of the spec this status reflects.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description=(
            "Conditions of the pool: Ready, Progressing, Degraded, and (kstatus, only "
            "while True) Reconciling and Stalled."
        ),
        json_schema_extra=conditions_schema_extra(16),
    )


class WorkerPool(Resource):
    """A WorkerPool is a set of long-running worker pods that run the Shiftboss worker
    runtime with one image and app. Jobs name a pool in spec.pool and are dispatched
    to its workers."""

    crd_info: ClassVar[CrdInfo] = CrdInfo(
        kind="WorkerPool",
        plural="workerpools",
        singular="workerpool",
        short_names=("wp",),
        list_kind="WorkerPoolList",
        printer_columns=(
            PrinterColumn("Desired", "integer", ".spec.replicas", "Desired worker pods."),
            PrinterColumn("Ready", "integer", ".status.readyReplicas", "Ready worker pods."),
            PrinterColumn("Busy", "integer", ".status.busyWorkers", "Workers running jobs."),
            PrinterColumn("Queued", "integer", ".status.queuedJobs", "Jobs waiting for a worker."),
            PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
            PrinterColumn(
                "Running", "integer", ".status.runningJobs", "Jobs running now.", priority=1
            ),
            PrinterColumn("Paused", "boolean", ".spec.paused", "Dispatch paused.", priority=1),
            PrinterColumn("Image", "string", ".spec.image", "Worker image.", priority=1),
        ),
        scale=ScaleSubresource(
            spec_replicas_path=".spec.replicas",
            status_replicas_path=".status.replicas",
            label_selector_path=".status.selector",
        ),
    )
    model_config = ConfigDict(
        json_schema_extra=validations(
            cel(
                f"self.metadata.name.size() <= {DNS1123_LABEL_MAX} && "
                f"self.metadata.name.matches('{DNS1123_LABEL}')",
                "metadata.name of a WorkerPool must be a DNS-1123 label (at most 63 "
                "lowercase letters, digits and '-', starting and ending with a letter or "
                "digit): it is the value of the shiftboss.io/pool label of its pods",
                field_path=".metadata.name",
            )
        )
    )

    kind: str = Field("WorkerPool", description="WorkerPool")
    spec: WorkerPoolSpec = Field(description="Desired state of the pool.")
    status: WorkerPoolStatus | None = Field(
        None,
        description="Observed state of the pool, written by the operator.",
    )
