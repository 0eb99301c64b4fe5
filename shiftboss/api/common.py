"""Shared pieces of the Shiftboss custom resource models.

Every model of the ``shiftboss.io`` API derives from :class:`ApiModel`: Python attributes
are snake_case, the wire (and CRD) names are camelCase, both are accepted on input, and
unknown keys are ignored so that objects read from the API server (with ``metadata``,
``managedFields``, fields of a newer CRD version, ...) always load.

Validation that the API server must enforce is declared here once, on the models, and
``shiftboss.api.crdgen`` turns it into the CRD schemas in ``crds/``:

* pydantic constraints (``ge``, ``le``, ``max_length``) become OpenAPI bounds;
* a string of one form is ``Annotated[str, Matching(regex, words, max_length=...)]``
  (:mod:`shiftboss.api.forms`): the CRD refuses other values with a CEL rule whose
  message says the form in words;
* a default is stated in the field's description ("Defaults to 5.") for ``kubectl explain``;
* :func:`cel` rules, attached with ``json_schema_extra``, become ``x-kubernetes-validations``;
* ``json_schema_extra={"default": ...}`` (see :data:`SERVER_DEFAULT_EMPTY`) asks the API
  server to materialise a value that pydantic fills with a ``default_factory``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
)
from pydantic.alias_generators import to_camel

from .forms import Matching

#: The API group of every Shiftboss resource.
API_GROUP = "shiftboss.io"
#: The one served (and stored) version of the API.
API_VERSION = "v1alpha1"
#: What goes in ``apiVersion`` of a Shiftboss object.
API_GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
#: The category of every Shiftboss resource: ``kubectl get shiftboss`` lists them all.
CATEGORY = "shiftboss"

#: A DNS-1123 label: what Kubernetes requires of names used as label values and hostnames.
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_LABEL_MAX = 63
DNS1123_LABEL_WORDS = (
    "a DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending "
    "with a letter or digit (for example resize-pool)"
)
#: A DNS-1123 subdomain: what Kubernetes requires of most object names.
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_SUBDOMAIN_WORDS = (
    "a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', starting and ending "
    "with a letter or digit (for example resize-worker)"
)


def _utc(value: datetime) -> datetime:
    """Make a timestamp timezone-aware in UTC (naive values are taken as UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, as Kubernetes writes times."""
    value = _utc(value)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


#: A point in time: loaded as an aware UTC ``datetime``, written as RFC 3339 (``...Z``).
Timestamp = Annotated[
    datetime,
    AfterValidator(_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
]


def _truncator(max_length: int) -> Callable[[Any], Any]:
    def truncate(value: Any) -> Any:
        if isinstance(value, str) and len(value) > max_length:
            return value[: max_length - 1] + "…"
        return value

    return truncate


def text(max_length: int) -> Any:
    """A human-readable string bounded to ``max_length`` characters.

    Longer input is truncated (ending in ``…``) instead of refused, so a long error
    message from a worker can never make a status write fail; the CRD still carries
    ``maxLength`` so the API server enforces the same bound.
    """
    return Annotated[
        str,
        BeforeValidator(_truncator(max_length)),
        Field(max_length=max_length),
    ]


def cel(
    rule: str,
    message: str,
    *,
    message_expression: str | None = None,
    field_path: str | None = None,
    reason: str | None = None,
) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry: a CEL ``rule`` and the ``message`` shown
    when it is false.  ``message_expression`` (CEL giving a string) is shown instead when
    set, ``message`` then only if it fails.  ``field_path`` (e.g. ``.timeoutSeconds``)
    points the error at a field below the node that carries the rule; ``reason`` is one of
    ``FieldValueInvalid`` (default), ``FieldValueForbidden``, ``FieldValueRequired``,
    ``FieldValueDuplicate``."""
    entry = {"rule": rule, "message": message}
    if message_expression is not None:
        entry["messageExpression"] = message_expression
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """``json_schema_extra`` carrying CEL rules, for a field or a model."""
    return {"x-kubernetes-validations": list(rules)}


#: ``json_schema_extra`` for a field whose Python ``default_factory`` gives an empty
#: object that the API server should also fill in (so the field is always present and
#: the nested defaults, and transition rules, apply).
SERVER_DEFAULT_EMPTY: dict[str, Any] = {"default": {}}


class ApiModel(BaseModel):
    """Base of every Shiftboss API model (camelCase on the wire, unknown keys ignored).

    Assignments are validated too: ``status.phase = "Running"`` stores the enum, a long
    ``status.message`` is truncated to its bound, and an out-of-range value fails where
    it is set rather than when the API server refuses the write.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="ignore",
        validate_assignment=True,
    )


#: A condition's message.
if TYPE_CHECKING:  # text() builds the annotation at run time; to a type checker it is a str
    ConditionMessage = str
else:
    ConditionMessage = text(32768)


class ConditionStatus(StrEnum):
    """The status of a condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the resource's current state, in the standard Kubernetes shape
    (type, status, reason, message, lastTransitionTime)."""

    type: Annotated[
        str,
        Matching(
            r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
            r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
            "a condition type in CamelCase, optionally prefixed by a DNS subdomain and '/' "
            "(for example Ready or example.com/Healthy)",
            max_length=316,
        ),
    ] = Field(description="Type of the condition, in CamelCase (for example Ready).")
    status: ConditionStatus = Field(
        description="Status of the condition: True, False or Unknown.",
    )
    reason: (
        Annotated[
            str,
            Matching(
                r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
                "a reason in CamelCase: a letter, then letters, digits, '_', ',' or ':' "
                "(for example PodsReady)",
                max_length=1024,
            ),
        ]
        | None
    ) = Field(
        None,
        description="Machine-readable CamelCase reason for the condition's last transition.",
    )
    message: ConditionMessage | None = Field(
        None,
        description="Human-readable details about the last transition.",
    )
    last_transition_time: Timestamp | None = Field(
        None,
        description="When the condition last changed from one status to another.",
    )
    observed_generation: int | None = Field(
        None,
        ge=0,
        description="The metadata.generation the condition was set for.",
    )


def conditions_schema_extra(max_items: int) -> dict[str, Any]:
    """Schema extras of a ``conditions`` list: a map keyed by ``type``, bounded."""
    return {
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "maxItems": max_items,
    }


def get_condition(conditions: Iterable[Condition] | None, type_: str) -> Condition | None:
    """The condition of type ``type_``, if present."""
    for condition in conditions or ():
        if condition.type == type_:
            return condition
    return None


def set_condition(
    conditions: Sequence[Condition] | None,
    type_: str,
    status: ConditionStatus | str | bool,
    reason: str | None = None,
    message: str | None = None,
    *,
    observed_generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; ``lastTransitionTime`` only moves when
    the status actually changes.  ``status`` may be a bool (True/False)."""
    conditions = list(conditions or ())
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    status = ConditionStatus(status)
    previous = get_condition(conditions, type_)
    if previous is not None and previous.status == status:
        transition = previous.last_transition_time
    else:
        transition = now or utcnow()
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    result = [c for c in conditions if c.type != type_]
    # Keep the position of an existing condition so that status diffs stay small.
    index = next((i for i, c in enumerate(conditions) if c.type == type_), len(result))
    result.insert(index, new)
    return result


@dataclass(frozen=True)
class PrinterColumn:
    """One ``additionalPrinterColumns`` entry of ``kubectl get``."""

    name: str
    type: str  # integer, number, string, boolean, date
    json_path: str
    description: str = ""
    priority: int = 0  # 0: always shown; 1: only with -o wide
    format: str | None = None


@dataclass(frozen=True)
class ScaleSubresource:
    """Paths of the ``scale`` subresource (``kubectl scale``, HPA)."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None = None


@dataclass(frozen=True)
class CrdInfo:
    """What the CRD of a root model needs beyond its schema."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = (CATEGORY,)
    printer_columns: tuple[PrinterColumn, ...] = ()
    selectable_fields: tuple[str, ...] = ()
    scale: ScaleSubresource | None = None
    list_kind: str = field(default="")

    @property
    def group(self) -> str:
        return API_GROUP

    @property
    def version(self) -> str:
        return API_VERSION

    @property
    def crd_name(self) -> str:
        """``<plural>.<group>``, the name of the CustomResourceDefinition."""
        return f"{self.plural}.{API_GROUP}"


class Resource(ApiModel):
    """Base of the root models: ``apiVersion``, ``kind``, ``metadata`` (kept as a dict)."""

    crd_info: ClassVar[CrdInfo]

    api_version: str = Field(
        API_GROUP_VERSION,
        description="APIVersion defines the versioned schema of this representation of an object.",
    )
    kind: str = Field(description="Kind is a string value representing the REST resource.")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Standard object metadata.",
    )

    @property
    def name(self) -> str | None:
        return self.metadata.get("name")

    @property
    def namespace(self) -> str | None:
        return self.metadata.get("namespace")

    @property
    def uid(self) -> str | None:
        return self.metadata.get("uid")

    @property
    def generation(self) -> int | None:
        return self.metadata.get("generation")

    def to_manifest(self) -> dict[str, Any]:
        """The object as a JSON-ready dict for the API server (no nulls)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
