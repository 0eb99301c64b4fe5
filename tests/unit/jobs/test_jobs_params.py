"""Params validation and schema checks (``shiftboss.jobs.params``).

Worker-registered schemas must never stall the operator: regexes run in linear time,
nothing is fetched, compiled schemas are kept in bounded memory, and errors from big
params stay cheap.  The timings asserted are loose bounds (a backtracking engine takes
tens of seconds where these take microseconds); the measured numbers are printed.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shiftboss.jobs.params import (
    MAX_MESSAGE_CHARS,
    CompiledSchemas,
    ParamsValidator,
    canonical_schema,
    check_schema,
    count_patterns,
)

CATASTROPHIC = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
WIDTH = {
    "type": "object",
    "properties": {"url": {"type": "string"}, "width": {"type": "integer"}},
    "required": ["url", "width"],
}


def check(schema: dict[str, Any], params: dict[str, Any]) -> str | None:
    return ParamsValidator(CompiledSchemas()).check(schema, params)


# -- messages -------------------------------------------------------------------------------


def test_params_that_fit_pass_and_an_empty_schema_checks_nothing():
    assert check(WIDTH, {"url": "u", "width": 3}) is None
    assert check({}, {"anything": [1, 2]}) is None


def test_each_bad_field_is_named_by_its_path_under_spec_params():
    message = check(WIDTH, {"url": 7})

    assert message == (
        'spec.params: "width" is a required property; spec.params.url: 7 is not of type "string"'
    )


def test_paths_through_arrays_and_objects_are_dotted():
    schema = {"properties": {"rows": {"items": {"properties": {"n": {"type": "integer"}}}}}}

    assert check(schema, {"rows": [{"n": 1}, {"n": "two"}]}) == (
        'spec.params.rows.1.n: "two" is not of type "integer"'
    )


def test_at_most_five_errors_are_named_then_how_many_more():
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}

    message = check(schema, {f"f{i}": "x" for i in range(8)})

    assert message is not None
    assert message.count("spec.params.f") == 5
    assert message.endswith(" (and 3 more)")
    assert message.startswith('spec.params.f0: "x" is not of type "integer"')


def test_the_message_stays_short_whatever_the_values_at_fault():
    schema = {"type": "object", "additionalProperties": {"type": "integer"}}

    message = check(schema, {f"f{i}": "v" * 10_000 for i in range(50)})

    assert message is not None
    assert len(message) <= MAX_MESSAGE_CHARS
    assert message.endswith(" (and 45 more)")


def test_format_stays_an_annotation_as_before():
    assert check({"properties": {"e": {"format": "email"}}}, {"e": "not an email"}) is None


# -- linear time ----------------------------------------------------------------------------


def test_a_catastrophic_pattern_takes_microseconds():
    validator = ParamsValidator(CompiledSchemas())
    params = {"s": "a" * 30 + "!"}
    assert validator.check(CATASTROPHIC, params) == (
        'spec.params.s: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!" does not match "^(a+)+$"'
    )

    started = time.perf_counter()
    for _ in range(1000):
        validator.check(CATASTROPHIC, params)
    each = (time.perf_counter() - started) / 1000

    print(f"\n^(a+)+$ against 30 a's and '!': {each * 1e6:.0f} us per check")
    assert each < 0.005  # Python's re takes about a minute for this one


def test_the_same_pattern_against_a_long_string_stays_linear():
    validator = ParamsValidator(CompiledSchemas())
    validator.check(CATASTROPHIC, {"s": "a"})

    started = time.perf_counter()
    message = validator.check(CATASTROPHIC, {"s": "a" * 100_000 + "!"})
    took = time.perf_counter() - started

    print(f"\n^(a+)+$ against 100,000 a's and '!': {took * 1e3:.2f} ms")
    assert message is not None and message.endswith('!" does not match "^(a+)+$"')
    assert took < 0.5


def big_schema() -> dict[str, Any]:
    """About 60 KiB: 500 typed fields, some with patterns and bounds."""
    fields: dict[str, Any] = {}
    for i in range(500):
        kind = i % 4
        if kind == 0:
            fields[f"f{i}"] = {"type": "string", "pattern": f"^[a-z]{{1,20}}{i}$", "maxLength": 64}
        elif kind == 1:
            fields[f"f{i}"] = {"type": "integer", "minimum": 0, "maximum": 10**6}
        elif kind == 2:
            fields[f"f{i}"] = {"type": "array", "items": {"type": "number"}, "maxItems": 10_000}
        else:
            fields[f"f{i}"] = {"type": "object", "additionalProperties": {"type": "string"}}
        fields[f"f{i}"]["description"] = f"field number {i}, described as a model would"
    return {
        "type": "object",
        "properties": fields,
        "required": ["f0"],
        "additionalProperties": False,
    }


def big_params(valid: bool) -> dict[str, Any]:
    """About 1 MiB of params for ``big_schema`` (etcd keeps objects under 1.5 MiB)."""
    params: dict[str, Any] = {}
    for i in range(500):
        kind = i % 4
        if kind == 0:
            params[f"f{i}"] = f"abc{i}" if valid else 12
        elif kind == 1:
            params[f"f{i}"] = i if valid else -1
        elif kind == 2:
            params[f"f{i}"] = [1.5] * 1500 if valid else ["x"] * 1500
        else:
            params[f"f{i}"] = {f"k{j}": "v" for j in range(40)}
    return params


def test_big_params_against_a_big_schema_stay_bounded():
    validator = ParamsValidator(CompiledSchemas())
    schema = big_schema()
    started = time.perf_counter()
    assert check_schema(schema, validator.cache) is None
    compiled = time.perf_counter() - started

    started = time.perf_counter()
    assert validator.check(schema, big_params(valid=True)) is None
    valid = time.perf_counter() - started

    started = time.perf_counter()
    message = validator.check(schema, big_params(valid=False))
    invalid = time.perf_counter() - started

    # The costliest error to report: one about the whole document (the engine copies the
    # value at fault into the error).
    params = big_params(valid=True)
    del params["f0"]
    started = time.perf_counter()
    at_root = validator.check(schema, params)
    root = time.perf_counter() - started

    print(
        f"\n60 KiB schema, 125 patterns: compiled in {compiled * 1e3:.1f} ms; 1 MiB of params: "
        f"valid {valid * 1e3:.1f} ms, 190,000 errors {invalid * 1e3:.1f} ms, one error about "
        f"the whole document {root * 1e3:.1f} ms"
    )
    further = "(further errors not listed: the params hold more than 2000 values)"
    assert message is not None and message.startswith("spec.params.f")
    assert message.endswith(further)
    assert at_root == f'spec.params: "f0" is a required property {further}'
    assert compiled < 1.0 and valid < 1.0 and invalid < 1.0 and root < 2.0


def test_deeply_nested_params_are_checked_or_refused_never_crashed():
    """1,000 levels: the most Python's JSON parser lets through (the API server: 10,000)."""
    deep: Any = 1
    for _ in range(1000):
        deep = [deep]
    nested = {"$ref": "#/$defs/n"}
    schema = {"properties": {"d": nested}, "$defs": {"n": {"type": "array", "items": nested}}}
    loose = {
        "properties": {"d": nested},
        "$defs": {"n": {"type": ["array", "integer"], "items": nested}},
    }

    assert check(loose, {"d": deep}) is None
    refused = check(schema, {"d": deep})
    assert refused is not None and refused.startswith("spec.params.d.0.0.0.0")
    assert refused.endswith(': 1 is not of type "array"')
    assert check({"properties": {"d": {"type": "string"}}}, {"d": deep}) == (
        "spec.params: cannot be checked: Recursion limit reached (the params are nested too "
        "deeply for the validator: flatten them)"
    )


# -- schemas refused at registration --------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        (
            {"properties": {"a": {"type": "string", "pattern": "^(?=x)y"}}},
            '#/properties/a/pattern: the regex "^(?=x)y" uses look-around, which the '
            "operator's linear-time regex engine does not support: rewrite the pattern "
            "without it",
        ),
        (
            {"patternProperties": {"(?<!x)y": {}}},
            '#/patternProperties/(?<!x)y: the regex "(?<!x)y" uses look-around',
        ),
        ({"pattern": "(a)\\1"}, 'the regex "(a)\\\\1" uses a back-reference'),
        ({"pattern": "(?<n>a)\\k<n>"}, "uses a back-reference"),
        ({"pattern": "(?>a)"}, "uses an atomic group"),
        ({"pattern": "[a-"}, "is not valid for the operator's linear-time regex engine"),
        ({"pattern": ".{0,255}"}, "at most 128 KiB compiled"),
        (
            {"$ref": "https://example.com/x.json"},
            "$ref 'https://example.com/x.json' points outside the schema: only references "
            "within it are allowed (such as '#/$defs/name'); the operator retrieves nothing",
        ),
        ({"$ref": "file:///etc/passwd"}, "$ref 'file:///etc/passwd' points outside the schema"),
        ({"$ref": "#/$defs/gone"}, "$ref '#/$defs/gone' points at nothing in the schema"),
        (
            {"$schema": "https://example.com/my-meta"},
            "$schema 'https://example.com/my-meta' is not a JSON Schema draft the operator "
            "knows: use 'https://json-schema.org/draft/2020-12/schema' or leave it out",
        ),
        ({"type": "strnig"}, "#/type: "),
        ({"properties": {"a/b": {"minLength": -1}}}, "#/properties/a~1b/minLength: -1 is less"),
    ],
)
def test_a_schema_that_cannot_be_evaluated_safely_is_refused_saying_where_and_why(schema, problem):
    message = check_schema(schema, CompiledSchemas())

    assert message is not None
    assert problem in message


@pytest.mark.parametrize(
    "schema",
    [
        {},
        WIDTH,
        CATASTROPHIC,
        {"pattern": "^[\\w.+-]+@[\\w-]+\\.[\\w.-]+$"},
        {"pattern": "^\\p{L}+$"},
        {"$defs": {"a": {"type": "integer"}}, "properties": {"x": {"$ref": "#/$defs/a"}}},
        {"$id": "https://example.com/root", "$defs": {"a": {"$id": "a.json"}}, "$ref": "a.json"},
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"},
        {"$defs": {"t": {"items": {"$ref": "#/$defs/t"}}}, "$ref": "#/$defs/t"},
    ],
)
def test_schemas_evaluable_in_linear_time_within_themselves_are_accepted(schema):
    assert check_schema(schema, CompiledSchemas()) is None


@pytest.fixture
def web_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server serving a schema, recording the paths asked for."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b'{"type": "integer"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_a_remote_ref_is_never_fetched(web_server):
    base, asked = web_server
    schema = {"properties": {"n": {"$ref": f"{base}/n.json"}}}

    assert "points outside the schema" in (check_schema(schema, CompiledSchemas()) or "")
    assert "cannot be checked" in (check({"$ref": f"{base}/n.json"}, {"n": 1}) or "")
    assert asked == []


def test_params_for_a_schema_that_was_refused_fail_saying_why():
    message = check({"pattern": "(?=a)"}, {"x": 1})

    assert message is not None
    assert message.startswith("spec.params: cannot be checked: the skill's input schema is refused")


# -- compiled once, in bounded memory -------------------------------------------------------


def test_a_schema_is_compiled_once_for_registration_and_every_check():
    cache = CompiledSchemas()
    validator = ParamsValidator(cache)

    assert check_schema(dict(WIDTH), cache) is None
    for _ in range(10):
        validator.check(dict(WIDTH), {"url": "u", "width": 1})

    assert len(cache) == 1


def test_the_cache_is_bounded_in_schemas_and_in_regexes():
    by_count = CompiledSchemas(max_schemas=3, max_patterns=1000)
    for i in range(10):
        check_schema({"type": "integer", "maximum": i}, by_count)
    assert len(by_count) == 3

    by_patterns = CompiledSchemas(max_schemas=100, max_patterns=10)
    for i in range(10):
        check_schema(
            {"properties": {f"p{j}": {"pattern": f"^{i}{j}$"} for j in range(4)}}, by_patterns
        )
    assert len(by_patterns) == 2  # 8 regexes held; a third schema would make 12


def test_refused_schemas_are_remembered_too():
    cache = CompiledSchemas()
    bad = {"pattern": "(?=a)"}

    assert check_schema(bad, cache) == check_schema(dict(bad), cache)
    assert len(cache) == 1


def test_count_patterns_counts_pattern_values_and_pattern_property_keys():
    schema = {
        "pattern": "a",
        "properties": {"pattern": {"type": "string", "pattern": "b"}},
        "patternProperties": {"x": {"pattern": "c"}, "y": {}},
        "items": [{"pattern": "d"}],
    }

    assert count_patterns(schema) == 6


def test_the_cache_is_bounded_by_schema_bytes():
    # A compiled schema weighs ~25 times its JSON: the byte budget is what bounds memory.
    cache = CompiledSchemas(max_schemas=100, max_patterns=1000, max_bytes=6_000)
    schemas = [
        {"type": "object", "properties": {f"p{i}_{n}": {"type": "integer"} for n in range(100)}}
        for i in range(5)
    ]
    sizes = [len(canonical_schema(s)) for s in schemas]
    assert all(2_500 < size < 3_000 for size in sizes)
    for schema in schemas:
        assert cache.get(schema).problem is None
    assert len(cache) == 2  # two fit in 6,000 bytes, the oldest went first
    assert cache.get(canonical_schema(schemas[-1])) is cache.get(schemas[-1])  # text or dict
