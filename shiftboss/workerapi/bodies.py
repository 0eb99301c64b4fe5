"""Request bodies in, responses out: strict JSON, bounded depth, typed models."""

from __future__ import annotations

import json
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from shiftboss.workerapi.problems import ApiProblem

#: Deeper JSON is refused: Kubernetes and pydantic both stop somewhere past a few hundred.
MAX_JSON_DEPTH = 64
M = TypeVar("M", bound=BaseModel)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _depth(value: object) -> int:
    """Nesting depth of parsed JSON, iteratively (a recursive walk is what we guard against)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


async def parse(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise ApiProblem(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    too_deep = f"the body nests deeper than {MAX_JSON_DEPTH} levels"
    try:
        data = json.loads(raw, parse_constant=_no_constants) if raw else {}
    except RecursionError as exc:
        raise ApiProblem(400, "malformed_json", too_deep) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiProblem(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
    if _depth(data) > MAX_JSON_DEPTH:
        raise ApiProblem(400, "malformed_json", too_deep)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        raise ApiProblem(
            422, "invalid_request", f"{where or 'body'}: {first['msg']}", where
        ) from exc


def reply(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json", exclude_none=True), status=status)
