"""Turn pydantic JSON Schemas into the *structural* OpenAPI v3 schemas Kubernetes requires.

What the conversion does (pydantic JSON Schema -> Kubernetes structural schema):

* every ``$ref`` is inlined (``$defs`` dropped); sibling keys of the ``$ref`` (the
  field's description, default, CEL rules) win over, or add to, the referenced model's;
* ``anyOf: [X, {type: null}]`` (``Optional[X]``) becomes ``X``: absent fields are how
  Kubernetes says "unset", and a merge patch's ``null`` deletes a field;
* ``title`` is dropped, ``const`` becomes a one-value ``enum``, numeric
  ``exclusiveMinimum``/``exclusiveMaximum`` become OpenAPI v3 booleans;
* free objects (``dict[str, Any]``) and free values (``Any``) become
  ``x-kubernetes-preserve-unknown-fields: true``; ``additionalProperties`` stays only as
  a schema for typed maps (``dict[str, str]``); ``additionalProperties: false`` is
  dropped (not allowed in structural schemas);
* ``default: null`` is dropped; other defaults are kept as they are, and stated at the
  end of the field's description ("Defaults to 5.") since ``kubectl explain`` does not
  show them;
* a ``pattern`` (from :class:`~shiftboss.api.forms.Matching`, with its form in words)
  becomes a CEL rule whose message says the form (:func:`~shiftboss.api.forms.pattern_to_rule`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from .forms import pattern_to_rule
from .openapi import INT_OR_STRING, PRESERVE, VALIDATIONS

_DROPPED_KEYS = frozenset(
    {"title", "$schema", "examples", "deprecated", "readOnly", "writeOnly", "discriminator"}
)

_PRESERVE = PRESERVE
_INT_OR_STRING = INT_OR_STRING
_VALIDATIONS = VALIDATIONS

#: Order of keys in a rendered schema node (others follow, sorted).
_KEY_ORDER = (
    "description", "type", "format", "enum", "default", "nullable",
    "minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern", "minItems", "maxItems", "minProperties",
    "maxProperties", "items", "properties", "additionalProperties", "required",
    _INT_OR_STRING, _PRESERVE, "x-kubernetes-embedded-resource", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-map-type", _VALIDATIONS,
)  # fmt: skip


class SchemaError(ValueError):
    """A model whose JSON Schema cannot become a structural CRD schema."""


def _normalize_description(text: str) -> str:
    """Join the lines of each paragraph (docstrings are wrapped), keep paragraph breaks."""
    paragraphs = [" ".join(p.split()) for p in text.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` wins key by key, except that CEL rules of both are kept (base first)."""
    merged = dict(base)
    for key, value in over.items():
        if key == _VALIDATIONS and key in merged:
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def _resolve(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    """Inline ``$ref``, single-item ``allOf`` and ``Optional`` unions until none is left."""
    for _ in range(64):
        if "$ref" in node:
            rest = {k: v for k, v in node.items() if k != "$ref"}
            ref = node["$ref"]
            prefix = "#/$defs/"
            if not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
                raise SchemaError(f"{path or '<root>'}: unresolvable $ref {ref!r}")
            node = _merge(defs[ref[len(prefix) :]], rest)
            continue
        if "allOf" in node:
            parts = node["allOf"]
            rest = {k: v for k, v in node.items() if k != "allOf"}
            if len(parts) != 1:
                raise SchemaError(f"{path}: allOf with {len(parts)} schemas is not supported")
            node = _merge(parts[0], rest)
            continue
        for union in ("anyOf", "oneOf"):
            if union in node:
                break
        else:
            return node
        rest = {k: v for k, v in node.items() if k != union}
        branches = [b for b in node[union] if b != {"type": "null"}]
        types = {b.get("type") for b in branches}
        if len(branches) == 1:
            node = _merge(branches[0], rest)
        elif types == {"integer", "string"} and len(branches) == 2:
            node = _merge({_INT_OR_STRING: True}, rest)
        else:
            raise SchemaError(
                f"{path}: a union of {len(branches)} schemas cannot be expressed in a "
                "structural schema; use one type, an int-or-string, or a free object"
            )
    raise SchemaError(f"{path}: $ref nesting too deep (recursive model?)")


def _convert(node: dict[str, Any], defs: dict[str, Any], path: str) -> dict[str, Any]:
    node = _resolve(node, defs, path)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "description":
            out[key] = _normalize_description(value)
        elif key == "default":
            if value is not None:
                out[key] = copy.deepcopy(value)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "items":
            if not isinstance(value, dict):
                raise SchemaError(f"{path}: tuple-typed arrays are not supported")
            out[key] = _convert(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = _convert(value, defs, f"{path}.*")
            elif value is True or value == {}:
                out[_PRESERVE] = True
            # additionalProperties: false is dropped: unknown fields are pruned anyway.
        elif key == "type" and isinstance(value, list):
            raise SchemaError(f"{path}: a list of types ({value}) is not structural")
        elif key in ("uniqueItems", "prefixItems", "patternProperties"):
            raise SchemaError(
                f"{path}: {key} is not allowed in a CRD schema"
                + ("; use x-kubernetes-list-type: set" if key == "uniqueItems" else "")
            )
        else:
            out[key] = copy.deepcopy(value)

    if "properties" in out and "additionalProperties" in out:
        raise SchemaError(f"{path}: both properties and a typed additionalProperties")
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out[_PRESERVE] = True  # a free JSON object
    if "type" not in out and not out.get(_INT_OR_STRING):
        if "enum" in out and all(isinstance(v, str) for v in out["enum"]):
            out["type"] = "string"
        else:
            out[_PRESERVE] = True  # any JSON value
    if "pattern" in out:
        try:
            pattern_to_rule(out)
        except ValueError as exc:
            raise SchemaError(f"{path}: {exc}") from None
    if "default" in out:
        out["description"] = _with_default(out.get("description", ""), out)
    return out


def _with_default(description: str, node: dict[str, Any]) -> str:
    """``description`` ending with the field's default, as ``kubectl explain`` shows it."""
    default = node["default"]
    sentence = f"Defaults to {json.dumps(default)}."
    if default == {} and "properties" in node:
        sentence = "Defaults to {}, so that each of its fields takes its own default."
    if description and description[-1] not in ".!?":
        description += "."
    return f"{description} {sentence}" if description else sentence


def order_keys(node: Any) -> Any:
    """Put schema keys in a stable, readable order (recursively)."""
    if isinstance(node, list):
        return [order_keys(v) for v in node]
    if not isinstance(node, dict):
        return node
    ordered: dict[str, Any] = {}
    for key in _KEY_ORDER:
        if key in node:
            ordered[key] = node[key]
    for key in sorted(node):
        if key not in ordered:
            ordered[key] = node[key]
    for key in ("items", "additionalProperties"):
        if isinstance(ordered.get(key), dict):
            ordered[key] = order_keys(ordered[key])
    if "properties" in ordered:
        ordered["properties"] = {k: order_keys(v) for k, v in ordered["properties"].items()}
    if _VALIDATIONS in ordered:
        ordered[_VALIDATIONS] = [
            {k: rule[k] for k in sorted(rule, key=_rule_key_rank)} for rule in ordered[_VALIDATIONS]
        ]
    return ordered


_RULE_KEY_ORDER = ("rule", "message", "messageExpression", "fieldPath", "reason", "optionalOldSelf")


def _rule_key_rank(key: str) -> tuple[int, str]:
    return (_RULE_KEY_ORDER.index(key) if key in _RULE_KEY_ORDER else len(_RULE_KEY_ORDER), key)


def to_structural(json_schema: dict[str, Any]) -> dict[str, Any]:
    """Turn a pydantic JSON Schema (with ``$defs``) into a structural schema."""
    raw = dict(json_schema)
    defs = raw.pop("$defs", {})
    structural: dict[str, Any] = order_keys(_convert(raw, defs, ""))
    return structural
