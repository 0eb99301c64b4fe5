"""Skill inference: names, schemas from type hints, params validation, result dumping."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from typing import Any

import pytest
from pydantic import BaseModel
from typing_extensions import TypedDict  # typing's TypedDict is refused by pydantic < 3.12

from worker_runtime import Context, Worker
from worker_runtime.protocol import MAX_INLINE_RESULT_BYTES
from worker_runtime.skills import SkillInputError, SkillOutputError, make_skill


class Resize(BaseModel):
    url: str
    width: int


class Resized(BaseModel):
    url: str
    bytes: int


@dataclasses.dataclass
class Point:
    x: float
    y: float = 0.0


class Greeting(TypedDict):
    name: str
    times: int


def test_pydantic_model_schemas_and_name_from_the_function() -> None:
    worker = Worker()

    @worker.skill()
    async def resize(params: Resize, ctx: Context) -> Resized:
        """Resize an image."""
        raise NotImplementedError

    [spec] = worker.skills
    assert spec.name == "resize"
    assert spec.description == "Resize an image."
    assert spec.input_schema["properties"]["width"] == {"title": "Width", "type": "integer"}
    assert sorted(spec.input_schema["required"]) == ["url", "width"]
    assert spec.output_schema["properties"]["bytes"]["type"] == "integer"


def test_dataclass_typeddict_and_plain_types() -> None:
    worker = Worker()

    @worker.skill(name="move", description="moves a point")
    def move_point(params: Point) -> Point:
        return params

    @worker.skill()
    def greet(params: Greeting) -> str:
        return ""

    @worker.skill()
    def double(params: int) -> int:
        return params * 2

    @worker.skill()
    def anything(params):  # no hints: anything goes
        return params

    specs = {s.name: s for s in worker.skills}
    assert specs["move"].description == "moves a point"
    assert specs["move"].input_schema["required"] == ["x"]
    assert specs["move"].input_schema["properties"]["y"]["default"] == 0.0
    assert specs["greet"].input_schema["properties"]["times"] == {
        "title": "Times",
        "type": "integer",
    }
    assert specs["greet"].output_schema == {"type": "string"}
    assert specs["double"].input_schema == {"type": "integer"}
    assert specs["double"].output_schema == {"type": "integer"}
    assert specs["anything"].input_schema == {}
    assert specs["anything"].output_schema == {}


def test_context_parameter_is_optional() -> None:
    def one(params: dict) -> dict:
        return params

    def two(params: dict, ctx: Context) -> dict:
        return params

    assert make_skill(one).arity == 1
    assert make_skill(two).arity == 2


@pytest.mark.parametrize(
    ("func", "name", "message"),
    [
        (lambda params: params, None, "invalid skill name '<lambda>'"),
        (lambda params: params, "has space", "invalid skill name"),
        (lambda a, b, c: a, "three", "must take (params) or (params, ctx)"),
    ],
)
def test_bad_skills_are_refused_at_decoration(func: Any, name: str | None, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=re.escape(message)):
        make_skill(func, name=name)


class Opaque:
    pass


def test_unsupported_type_is_a_clear_error() -> None:
    def bad(params: Opaque) -> None:
        return None

    with pytest.raises(TypeError, match="skill 'bad': unsupported params type"):
        make_skill(bad)


def test_decorator_forms() -> None:
    worker = Worker()

    @worker.skill
    def bare(params: dict) -> None: ...

    @worker.skill("positional-name")
    def named(params: dict) -> None: ...

    assert [s.name for s in worker.skills] == ["bare", "positional-name"]
    assert worker.get_skill("bare").func is bare


def test_duplicate_skill_names_are_refused() -> None:
    worker = Worker()

    @worker.skill(name="same")
    def first(params: dict) -> None: ...

    with pytest.raises(ValueError, match="already registered"):

        @worker.skill(name="same")
        def second(params: dict) -> None: ...


def test_params_validation_message_names_the_field() -> None:
    skill = make_skill(_resize_fn, name="resize")
    assert isinstance(skill.parse_params({"url": "u", "width": "12"}), Resize)
    with pytest.raises(SkillInputError) as info:
        skill.parse_params({"url": "u", "width": "wide"})
    message = str(info.value)
    assert "in params of skill 'resize'" in message
    assert "width: Input should be a valid integer" in message
    assert "'wide'" in message
    assert "errors.pydantic.dev" not in message


def _resize_fn(params: Resize) -> Resized:
    return Resized(url=params.url, bytes=1)


def test_result_is_dumped_as_json_and_checked() -> None:
    skill = make_skill(_resize_fn)
    assert skill.dump_result(Resized(url="u", bytes=3)) == {"url": "u", "bytes": 3}

    def returns_dict(params: dict) -> dict:
        return {}

    with pytest.raises(SkillOutputError) as info:
        make_skill(returns_dict).dump_result(["not", "a", "dict"])
    assert info.value.error_type == "InvalidResult"

    def big(params: dict) -> str:
        return ""

    with pytest.raises(SkillOutputError) as info:
        make_skill(big).dump_result("x" * (MAX_INLINE_RESULT_BYTES + 1))
    assert info.value.error_type == "ResultTooLarge"


async def test_sync_skill_runs_in_a_thread_and_async_on_the_loop() -> None:
    seen: dict[str, int] = {}

    def sync_skill(params: dict) -> int:
        seen["sync"] = threading.get_ident()
        return 1

    async def async_skill(params: dict) -> int:
        seen["async"] = threading.get_ident()
        return 2

    ctx: Any = None
    assert await make_skill(sync_skill).call({}, ctx) == 1
    assert await make_skill(async_skill).call({}, ctx) == 2
    assert seen["async"] == threading.get_ident()
    assert seen["sync"] != threading.get_ident()


async def test_sync_skill_exception_reaches_the_loop() -> None:
    def boom(params: dict) -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        await asyncio.wait_for(make_skill(boom).call({}, None), 2)  # type: ignore[arg-type]


async def test_a_sync_call_finishes_only_when_its_thread_has_ended() -> None:
    release = threading.Event()

    def slow(params: dict) -> str:
        release.wait(5)
        return "returned"

    call = make_skill(slow).start({}, None)  # type: ignore[arg-type]
    assert not call.stoppable
    call.stop()  # a thread cannot be interrupted: nothing changes
    await asyncio.sleep(0.05)
    assert not call.finished.done()  # the thread still runs: its slot must stay taken
    release.set()
    await asyncio.wait_for(asyncio.wait([call.finished]), 2)
    assert call.finished.result() == "returned"


async def test_an_async_call_is_stopped_by_cancellation() -> None:
    async def slow(params: dict) -> str:
        await asyncio.sleep(10)
        return "never"

    call = make_skill(slow).start({}, None)  # type: ignore[arg-type]
    assert call.stoppable
    call.stop()
    await asyncio.wait_for(asyncio.wait([call.finished]), 2)
    assert call.finished.cancelled()


async def test_cancelling_a_call_cancels_an_async_skill() -> None:
    stopped = asyncio.Event()

    async def slow(params: dict) -> str:
        try:
            await asyncio.sleep(10)
        finally:
            stopped.set()
        return "never"

    waiting = asyncio.ensure_future(make_skill(slow).call({}, None))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.wait_for(stopped.wait(), 2)
