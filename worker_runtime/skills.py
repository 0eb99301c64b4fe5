"""Skills: a function, its name, and the JSON Schemas of its input and output.

Everything is inferred from the signature ``(params: T, ctx: Context) -> R`` with
``pydantic.TypeAdapter``, so pydantic models, dataclasses, TypedDicts and plain JSON
types all work, and the schemas the worker registers are the ones it validates with.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_type_hints

from pydantic import PydanticUserError, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from .context import Context
from .protocol import MAX_INLINE_RESULT_BYTES, SkillSpec

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class SkillInputError(Exception):
    """The params break the skill's input schema: the job fails without retry."""

    error_type = "InvalidParams"


class SkillOutputError(Exception):
    """The result cannot be stored (not JSON-able, or too large): fails without retry."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    func: Callable[..., Any]
    input_adapter: TypeAdapter[Any]
    output_adapter: TypeAdapter[Any]
    #: How many positional arguments the function takes: 0, 1 (params) or 2 (params, ctx).
    arity: int
    is_async: bool
    spec: SkillSpec

    def parse_params(self, params: dict[str, Any]) -> Any:
        """Validate JSON params into the annotated type; ``SkillInputError`` if they break it."""
        try:
            return self.input_adapter.validate_python(params)
        except ValidationError as exc:
            raise SkillInputError(describe_validation_error(exc, self.name)) from None

    def start(self, params: Any, ctx: Context) -> SkillCall:
        """Start the function: an async one as a task on the loop, a sync one in a thread."""
        args = (params, ctx)[: self.arity]
        if self.is_async:
            task: asyncio.Task[Any] = asyncio.ensure_future(self.func(*args))
            return SkillCall(finished=task, task=task)
        return SkillCall(finished=run_in_thread(self.func, *args, name=f"skill-{self.name}"))

    async def call(self, params: Any, ctx: Context) -> Any:
        """Run the function to its end and return its result (or raise its error)."""
        call = self.start(params, ctx)
        try:
            await asyncio.wait([call.finished])
        except asyncio.CancelledError:
            call.stop()
            raise
        return call.finished.result()

    def dump_result(self, value: Any) -> Any:
        """The result as JSON-able data, checked against the output type and the size cap."""
        try:
            data = self.output_adapter.dump_python(value, mode="json", warnings="error")
            size = len(json.dumps(data, separators=(",", ":")).encode())
        except (PydanticSerializationError, TypeError, ValueError) as exc:
            raise SkillOutputError(
                "InvalidResult",
                f"skill {self.name!r} returned a result that cannot be "
                f"serialised as its declared output type: {exc}",
            ) from None
        if size > MAX_INLINE_RESULT_BYTES:
            raise SkillOutputError(
                "ResultTooLarge",
                f"skill {self.name!r} returned {size} bytes of JSON; results are capped at "
                f"{MAX_INLINE_RESULT_BYTES} bytes: store large outputs elsewhere and return "
                "a reference",
            )
        return data


@dataclass(frozen=True)
class SkillCall:
    """One running call of a skill.

    ``finished`` settles with what the skill returned or raised only once its code has
    really returned: for a sync skill, when its thread has ended.  A slot stays taken
    until then.  ``stop()`` cancels an async skill; a thread cannot be interrupted, so
    for a sync skill it does nothing (the skill should watch ``ctx.cancelled``).
    """

    finished: asyncio.Future[Any]
    task: asyncio.Task[Any] | None = None

    @property
    def stoppable(self) -> bool:
        return self.task is not None

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


def make_skill(
    func: Callable[..., Any], name: str | None = None, description: str | None = None
) -> Skill:
    """Build a Skill from a function; ``TypeError``/``ValueError`` explain what is wrong."""
    name = name or str(getattr(func, "__name__", ""))
    if not _NAME_RE.match(name) or len(name) > 63:
        raise ValueError(
            f"invalid skill name {name!r}: use letters, digits, '_', '.', '-' (max 63), "
            "starting with a letter or '_'"
        )
    if description is None:
        description = inspect.getdoc(func) or ""
    positional = _positional_params(func, name)
    if len(positional) > 2:
        raise TypeError(f"skill {name!r} must take (params) or (params, ctx), not {positional}")
    try:
        hints = get_type_hints(func, include_extras=True)
    except Exception as exc:
        raise TypeError(f"skill {name!r}: cannot resolve its type hints: {exc}") from exc
    input_type = hints.get(positional[0], Any) if positional else dict[str, Any]
    output_type = hints.get("return", Any)
    input_adapter = _adapter(input_type, name, "params")
    output_adapter = _adapter(output_type, name, "return")
    spec = SkillSpec(
        name=name,
        description=description.strip()[:1024],
        input_schema=_schema(input_adapter, "validation", name),
        output_schema=_schema(output_adapter, "serialization", name),
    )
    call_target = func if inspect.isroutine(func) else getattr(func, "__call__", func)  # noqa: B004
    return Skill(
        name=name,
        description=spec.description,
        func=func,
        input_adapter=input_adapter,
        output_adapter=output_adapter,
        arity=len(positional),
        is_async=inspect.iscoroutinefunction(call_target),
        spec=spec,
    )


def describe_validation_error(exc: ValidationError, skill: str) -> str:
    """Pydantic's errors, one per field, without its doc URLs; fits a FailReport."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "params"
        got = repr(error.get("input"))
        got = got if len(got) <= 80 else got[:77] + "..."
        parts.append(f"{where}: {error['msg']} (got {got})")
    count = exc.error_count()
    head = f"{count} validation error{'s' if count != 1 else ''} in params of skill {skill!r}: "
    return (head + "; ".join(parts))[:4096]


def run_in_thread(func: Callable[..., Any], *args: Any, name: str) -> asyncio.Future[Any]:
    """Run ``func`` in a new daemon thread; the future settles when the thread has ended.

    The future is the thread's own end, not a wait for it: it settles with the result
    or the exception only once ``func`` has returned, and cancelling it does not stop
    the thread (nothing can), so do not.  Not ``asyncio.to_thread``: the default
    executor's threads are joined when the loop and the interpreter shut down, so one
    stuck sync skill would keep a draining worker from ever exiting; a daemon thread is
    left behind instead.  Concurrency is bounded by the worker's slots, which stay taken
    until the thread ends, so a thread per attempt stays cheap.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()  # carries the log ids into the thread

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def target() -> None:
        result, error = None, None
        try:
            result = context.run(func, *args)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed (the worker exited)
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


def _positional_params(func: Callable[..., Any], name: str) -> list[str]:
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"skill {name!r}: cannot read its signature: {exc}") from exc
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in signature.parameters.values() if p.kind in kinds]


def _adapter(tp: Any, skill: str, what: str) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(tp)
    except (PydanticUserError, TypeError) as exc:
        raise TypeError(
            f"skill {skill!r}: unsupported {what} type {tp!r}; use a pydantic model, a "
            f"dataclass, a TypedDict or JSON types: {exc}"
        ) from exc


def _schema(adapter: TypeAdapter[Any], mode: str, skill: str) -> dict[str, Any]:
    try:
        return adapter.json_schema(mode=mode)  # type: ignore[arg-type]
    except PydanticUserError as exc:
        raise TypeError(f"skill {skill!r}: its types have no JSON Schema: {exc}") from exc
