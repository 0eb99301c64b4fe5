"""Params checked against the input schema a worker registered for the skill."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator | None:
    schema = json.loads(schema_json)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return None  # a worker sent a schema we cannot use: do not block its jobs on it
    return Draft202012Validator(schema)


class ParamsValidator:
    def check(self, schema: dict[str, Any], params: dict[str, Any]) -> str | None:
        """None when ``params`` fit ``schema``; else a message naming each bad field."""
        if not schema:
            return None
        validator = _validator(json.dumps(schema, sort_keys=True))
        if validator is None:
            return None
        errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
        if not errors:
            return None
        parts = []
        for error in errors[:5]:
            where = ".".join(str(p) for p in error.absolute_path)
            parts.append(f"spec.params{'.' + where if where else ''}: {error.message}")
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        return "; ".join(parts)[:1000] + more
