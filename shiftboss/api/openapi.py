"""Small, dependency-free tools for Kubernetes structural OpenAPI v3 schemas.

* :func:`structural_errors` - why a schema would not be accepted as a CRD schema;
* :func:`value_errors` - validate a value against a schema (the OpenAPI subset the
  generated CRDs use: types, enums, bounds, patterns, required, list-map keys);
* :func:`apply_defaults` - fill in defaults the way the API server does.

They are used by ``crdgen`` (to refuse to emit a broken CRD) and by tests (to check
defaults and sample objects without a cluster). CEL rules are not evaluated here, except
the pattern rules of :func:`~shiftboss.api.forms.matches_rule`.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .forms import INT_OR_STRING as INT_OR_STRING
from .forms import VALIDATIONS as VALIDATIONS
from .forms import rule_regex

PRESERVE = "x-kubernetes-preserve-unknown-fields"

#: The keys of an apiextensions.k8s.io/v1 JSONSchemaProps (plus the x-kubernetes-* ones).
JSON_SCHEMA_PROPS = frozenset(
    {
        "id", "$schema", "$ref", "description", "type", "format", "title", "default",
        "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength",
        "minLength", "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf", "enum",
        "maxProperties", "minProperties", "required", "items", "allOf", "oneOf", "anyOf",
        "not", "properties", "additionalProperties", "patternProperties", "dependencies",
        "additionalItems", "definitions", "externalDocs", "example", "nullable",
        "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys", "x-kubernetes-list-type",
        "x-kubernetes-map-type", "x-kubernetes-validations",
    }
)  # fmt: skip
TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean"})


def structural_errors(schema: Any, path: str = "", *, root: bool = False) -> list[str]:
    """Why ``schema`` is not a structural schema that kube-apiserver accepts (empty: it is).

    Checks what the API server checks of CRD schemas that a generator can get wrong: a
    type on every node (or int-or-string / preserve-unknown-fields), no ``$ref`` or
    unions, no ``additionalProperties`` beside ``properties``, no unknown keywords, root
    ``metadata`` restricted to name/generateName, list-map keys that exist and are
    required or defaulted, and well-formed CEL rule entries.  ``root=True`` for the
    ``openAPIV3Schema`` of a CRD.
    """
    where = path or "<root>"
    if not isinstance(schema, dict):
        return [f"{where}: schema node is not an object"]
    errors: list[str] = []
    for key in schema:
        if key not in JSON_SCHEMA_PROPS:
            errors.append(f"{where}: unknown schema keyword {key!r}")
    for key in ("$ref", "definitions", "allOf", "anyOf", "oneOf", "not", "patternProperties"):
        if key in schema:
            errors.append(f"{where}: {key} is not allowed here")
    type_ = schema.get("type")
    if type_ is None:
        if not (schema.get(INT_OR_STRING) or schema.get(PRESERVE)):
            errors.append(f"{where}: no type (and not int-or-string or preserve-unknown-fields)")
    elif type_ not in TYPES:
        errors.append(f"{where}: invalid type {type_!r}")
    if schema.get("uniqueItems"):
        errors.append(f"{where}: uniqueItems: true is forbidden")
    for key in ("exclusiveMinimum", "exclusiveMaximum"):
        if key in schema and not isinstance(schema[key], bool):
            errors.append(f"{where}: {key} must be a boolean in OpenAPI v3")
    if "description" in schema and not isinstance(schema["description"], str):
        errors.append(f"{where}: description must be a string")

    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    if properties is not None and type_ != "object":
        errors.append(f"{where}: properties on a non-object node")
    if additional is not None:
        if not isinstance(additional, dict):
            errors.append(f"{where}: additionalProperties must be a schema, not {additional!r}")
        elif properties is not None:
            errors.append(f"{where}: additionalProperties and properties are mutually exclusive")
        else:
            errors += structural_errors(additional, f"{path}.*")
    for name in schema.get("required", []):
        if properties is None or name not in properties:
            errors.append(f"{where}: required field {name!r} is not a property")
    if properties is not None:
        for name, sub in properties.items():
            sub_path = f"{path}.{name}"
            if root and name == "metadata":
                extra = set(sub) - {"type", "properties"}
                extra |= set(sub.get("properties", {})) - {"name", "generateName"}
                if extra or sub.get("type") != "object":
                    errors.append(
                        f"{sub_path}: only type: object and restrictions of name and "
                        "generateName are allowed"
                    )
                continue
            errors += structural_errors(sub, sub_path)

    if type_ == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            errors.append(f"{where}: array without an items schema")
        else:
            errors += structural_errors(items, f"{path}[]")
            list_type = schema.get("x-kubernetes-list-type")
            if list_type == "map":
                keys = schema.get("x-kubernetes-list-map-keys") or []
                item_props = items.get("properties", {})
                if not keys:
                    errors.append(f"{where}: list-type map without list-map-keys")
                for key in keys:
                    prop = item_props.get(key)
                    if prop is None:
                        errors.append(f"{where}: list-map key {key!r} is not an item property")
                    elif key not in items.get("required", []) and "default" not in prop:
                        errors.append(f"{where}: list-map key {key!r} must be required")
            elif list_type == "set" and items.get("type") not in ("string", "integer", "number"):
                errors.append(f"{where}: list-type set needs scalar items")
    elif "items" in schema:
        errors.append(f"{where}: items on a non-array node")

    for rule in schema.get(VALIDATIONS, []):
        if not isinstance(rule, dict) or not isinstance(rule.get("rule"), str):
            errors.append(f"{where}: a validation rule entry without a rule")
            continue
        message = rule.get("message", "")
        if not message or "\n" in message or len(message) > 1024:
            errors.append(f"{where}: rule {rule['rule']!r} needs a one-line message")
    return errors


def _type_ok(type_: str, value: Any) -> bool:
    if type_ == "object":
        return isinstance(value, dict)
    if type_ == "array":
        return isinstance(value, list)
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


def value_errors(schema: dict[str, Any], value: Any, path: str = "") -> list[str]:
    """Why ``value`` does not validate against ``schema`` (empty: it does).

    Covers the keywords the generated CRDs use; ``format`` is only checked for
    ``date-time``. Of the ``x-kubernetes-validations`` (CEL) only the pattern rules of
    :func:`~shiftboss.api.forms.matches_rule` are evaluated.
    """
    where = path or "<root>"
    errors: list[str] = []
    type_ = schema.get("type")
    if schema.get(INT_OR_STRING):
        if not (_type_ok("integer", value) or isinstance(value, str)):
            return [f"{where}: must be an integer or a string, not {value!r}"]
    elif type_ is not None and not _type_ok(type_, value):
        return [f"{where}: must be of type {type_}, not {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema:
            low = schema["minimum"]
            if value < low or (schema.get("exclusiveMinimum") and value == low):
                errors.append(f"{where}: {value} is below the minimum {low}")
        if "maximum" in schema:
            high = schema["maximum"]
            if value > high or (schema.get("exclusiveMaximum") and value == high):
                errors.append(f"{where}: {value} is above the maximum {high}")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{where}: longer than {schema['maxLength']} characters")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{where}: shorter than {schema['minLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{where}: {value!r} does not match {schema['pattern']}")
        for rule in schema.get(VALIDATIONS, []):
            regex = rule_regex(rule["rule"])
            if regex is not None and not re.search(regex, value):
                errors.append(f"{where}: {value!r} {rule['message']}")
        if schema.get("format") == "date-time" and not re.match(
            r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", value
        ):
            errors.append(f"{where}: {value!r} is not an RFC 3339 date-time")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                errors += value_errors(items, item, f"{path}[{i}]")
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "set" and len({repr(v) for v in value}) != len(value):
            errors.append(f"{where}: duplicate entries in a set")
        if list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = [tuple(item.get(k) for k in keys) for item in value if isinstance(item, dict)]
            if len(set(seen)) != len(seen):
                errors.append(f"{where}: duplicate entries for keys {keys}")
    if isinstance(value, dict):
        properties = schema.get("properties")
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{where}: required field {name!r} is missing")
        if properties is not None:
            for name, sub_value in value.items():
                if not path and name == "metadata":
                    continue  # ObjectMeta is validated by the API server itself
                if name in properties:
                    errors += value_errors(properties[name], sub_value, f"{path}.{name}")
                elif not schema.get(PRESERVE):
                    errors.append(f"{where}: unknown field {name!r}")
        elif isinstance(schema.get("additionalProperties"), dict):
            for name, sub_value in value.items():
                errors += value_errors(schema["additionalProperties"], sub_value, f"{path}.{name}")
    return errors


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of ``value`` with the schema's defaults filled in, as the API server does
    (a defaulted object gets the defaults of its own fields too)."""
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name, prop in properties.items():
            if "default" in prop and value.get(name) is None:
                value[name] = copy.deepcopy(prop["default"])
        for name, sub in value.items():
            if name in properties:
                _default(properties[name], sub)
            elif isinstance(schema.get("additionalProperties"), dict):
                _default(schema["additionalProperties"], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(schema["items"], item)


def schema_at(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    """The schema node of a simple path like ``.spec.replicas`` (None when absent)."""
    node: dict[str, Any] | None = schema
    for part in json_path.lstrip(".").split("."):
        if node is None:
            return None
        node = node.get("properties", {}).get(part)
    return node
