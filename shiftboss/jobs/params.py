"""Params checked against the input schema a worker registered for the skill.

Workers send the schemas, so they are evaluated in a way no schema can stall the
operator: by ``jsonschema-rs``, whose ``pattern`` regexes run on the Rust ``regex``
engine (linear time: no look-around, no back-references, a bounded compiled size), with
retrieval off (``$ref`` only within the schema itself; nothing is fetched, no file is
read).  ``check_schema`` refuses at registration what cannot be evaluated that way, and
each schema is compiled once and kept in a bounded cache.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jsonschema_rs

#: Compiled size allowed per regex, in bytes (the engine's NFA and its lazy DFA cache).
#: Compiling costs about 0.3 ms and keeps about 0.1 MiB per regex at this size (measured
#: on the largest regexes that fit); common patterns need a few KiB.  A bounded repeat of
#: a Unicode class (``.{0,255}``) compiles past it: ``maxLength`` says that for free.
REGEX_SIZE_LIMIT = 128 * 1024
#: Errors named in a params message, and the message's length at most (it lands in the
#: Job's status).
MAX_ERRORS_SHOWN = 5
MAX_MESSAGE_CHARS = 1000
#: Params with more values than this get their first error only: the engine gathers
#: every error at once, about 30 us each (9 s for a 1.5 MiB Job full of errors).
MAX_VALUES_FOR_ALL_ERRORS = 2000
#: Length of one error in a message (an error quotes the value at fault, which may be big).
MAX_ERROR_CHARS = 200

_PATTERN_OPTIONS = jsonschema_rs.RegexOptions(
    size_limit=REGEX_SIZE_LIMIT, dfa_size_limit=REGEX_SIZE_LIMIT
)
#: Constructs of backtracking engines that the linear-time engine cannot have.
_UNSUPPORTED_REGEX = (
    (re.compile(r"\(\?<?[=!]"), "look-around"),
    (re.compile(r"\\[1-9]|\\k<"), "a back-reference"),
    (re.compile(r"\(\?>"), "an atomic group"),
)


def count_patterns(schema: object) -> int:
    """Regexes a schema holds: ``pattern`` values and ``patternProperties`` keys (an
    upper bound: a ``pattern`` key inside ``default`` or ``const`` counts too)."""
    count, stack = 0, [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                count += 1
            if isinstance(node.get("patternProperties"), dict):
                count += len(node["patternProperties"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def canonical_schema(schema: dict[str, Any]) -> str:
    """The schema as compact JSON with sorted keys: how the operator keeps and keys it."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class _Compiled:
    validator: jsonschema_rs.Validator | None
    problem: str | None
    patterns: int
    #: Bytes of the schema's canonical JSON (its compiled form weighs about 25 times that).
    size: int


class CompiledSchemas:
    """Compiled schemas by their canonical text, least recently used first out (the
    registry hands the same text object to every check, so its hash is computed once).

    Bounded in count, in regexes held and in schema bytes: a compiled schema weighs about
    25 times its JSON (a 63 KiB schema of many small properties compiles to ~1.7 MiB),
    so a byte budget is what keeps workers' registrations from growing the operator:
    512 KiB of schema JSON (~13 MiB compiled at worst) still holds some 250 schemas of
    the usual 2 KiB; a schema pushed out is compiled again when next needed.
    """

    def __init__(
        self, *, max_schemas: int = 512, max_patterns: int = 1024, max_bytes: int = 512 * 1024
    ) -> None:
        self.max_schemas, self.max_patterns, self.max_bytes = max_schemas, max_patterns, max_bytes
        self._entries: OrderedDict[str, _Compiled] = OrderedDict()
        self._patterns = 0
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, schema: dict[str, Any] | str) -> _Compiled:
        """The compiled ``schema`` (a dict, or its ``canonical_schema`` text)."""
        text = schema if isinstance(schema, str) else canonical_schema(schema)
        compiled = self._entries.get(text)
        if compiled is not None:
            self._entries.move_to_end(text)
            return compiled
        compiled = _compile(json.loads(text) if isinstance(schema, str) else schema, len(text))
        while self._entries and (
            len(self._entries) >= self.max_schemas
            or self._patterns + compiled.patterns > self.max_patterns
            or self._bytes + compiled.size > self.max_bytes
        ):
            evicted = self._entries.popitem(last=False)[1]
            self._patterns -= evicted.patterns
            self._bytes -= evicted.size
        self._entries[text] = compiled
        self._patterns += compiled.patterns
        self._bytes += compiled.size
        return compiled


#: The one cache of the operator: registration compiles, params checks reuse.
COMPILED = CompiledSchemas()


def check_schema(schema: dict[str, Any] | str, cache: CompiledSchemas = COMPILED) -> str | None:
    """None if the operator can evaluate ``schema`` safely; else what is wrong, where."""
    return cache.get(schema).problem


class ParamsValidator:
    def __init__(self, cache: CompiledSchemas = COMPILED) -> None:
        self.cache = cache

    def check(self, schema: dict[str, Any] | str, params: dict[str, Any]) -> str | None:
        """None when ``params`` fit ``schema``; else a message naming each bad field."""
        if not schema:
            return None
        compiled = self.cache.get(schema)
        if compiled.validator is None:
            return (
                "spec.params: cannot be checked: the skill's input schema is refused: "
                f"{compiled.problem}"
            )
        try:
            if compiled.validator.is_valid(params):
                return None
            if _has_more_values(params, MAX_VALUES_FOR_ALL_ERRORS):
                return _first_error(compiled.validator, params)
            errors = list(compiled.validator.iter_errors(params))
        except ValueError as exc:
            # Only nesting deeper than the engine recurses (a few hundred levels) gets
            # here.  Its stack would overflow past about 20,000, which JSON parsing keeps
            # params far from: Python's parser stops at 1,000, the API server at 10,000.
            return (
                f"spec.params: cannot be checked: {_first_line(str(exc))} (the params are "
                "nested too deeply for the validator: flatten them)"
            )
        errors.sort(key=lambda e: [str(p) for p in e.instance_path])
        more = (
            f" (and {len(errors) - MAX_ERRORS_SHOWN} more)"
            if len(errors) > MAX_ERRORS_SHOWN
            else ""
        )
        message = "; ".join(_error_text(error) for error in errors[:MAX_ERRORS_SHOWN])
        return _cut(message, MAX_MESSAGE_CHARS - len(more)) + more


def _first_error(validator: jsonschema_rs.Validator, params: dict[str, Any]) -> str | None:
    """The first error only: gathering them all from big params takes seconds."""
    try:
        validator.validate(params)
    except jsonschema_rs.ValidationError as error:
        return (
            _error_text(error) + f" (further errors not listed: the params hold more than "
            f"{MAX_VALUES_FOR_ALL_ERRORS} values)"
        )
    return None


def _error_text(error: jsonschema_rs.ValidationError) -> str:
    """One error, its middle cut out when long: it quotes the value at fault first and
    says what is wrong with it last."""
    text = f"spec.params{''.join(f'.{p}' for p in error.instance_path)}: {error.message}"
    if len(text) <= MAX_ERROR_CHARS:
        return text
    tail = MAX_ERROR_CHARS // 3
    return f"{text[: MAX_ERROR_CHARS - tail - 5]} ... {text[-tail:]}"


def _has_more_values(document: object, limit: int) -> bool:
    """Whether a JSON document holds more than ``limit`` values, looking at no more."""
    found, stack = 1, [document]
    while stack:
        node = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        taken = list(itertools.islice(children, limit - found + 1))
        found += len(taken)
        if found > limit:
            return True
        stack.extend(taken)
    return False


def _compile(schema: dict[str, Any], size: int) -> _Compiled:
    patterns = count_patterns(schema)
    try:
        validator = jsonschema_rs.validator_for(
            schema,
            pattern_options=_PATTERN_OPTIONS,
            # ``format`` stays an annotation, as before: no format is enforced.
            validate_formats=False,
            offline=True,
        )
    except jsonschema_rs.ValidationError as exc:
        return _Compiled(None, _describe(exc), patterns, size)
    except (jsonschema_rs.ReferencingError, ValueError, TypeError) as exc:
        return _Compiled(None, _first_line(str(exc)), patterns, size)
    return _Compiled(validator, None, patterns, size)


def _describe(error: jsonschema_rs.ValidationError) -> str:
    """What is wrong with a schema, where (a JSON pointer), and how to mend it."""
    where = "#" + "".join(
        "/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.instance_path
    )
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Format) and kind.format == "regex":
        return f"{where}: {_regex_problem(str(error.instance))}"
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Referencing):
        return _reference_problem(error.message)
    return f"{where}: {_first_line(error.message)}"


def _regex_problem(pattern: str) -> str:
    quoted = _cut(json.dumps(pattern), 80)
    for construct, name in _UNSUPPORTED_REGEX:
        if construct.search(pattern):
            return (
                f"the regex {quoted} uses {name}, which the operator's linear-time regex "
                "engine does not support: rewrite the pattern without it"
            )
    return (
        f"the regex {quoted} is not valid for the operator's linear-time regex engine "
        f"(Rust regex syntax, at most {REGEX_SIZE_LIMIT // 1024} KiB compiled: a bounded "
        "repeat of a broad class such as '.{0,255}' is large, use maxLength instead)"
    )


_OUTSIDE = re.compile(r"Resource '(?P<uri>[^']*)' is not present")
_NO_POINTER = re.compile(r"Pointer '(?P<pointer>[^']*)' does not exist")
_UNKNOWN_META = re.compile(r"Unknown meta-schema: '(?P<uri>[^']*)'")


def _reference_problem(message: str) -> str:
    if match := _OUTSIDE.search(message):
        return (
            f"$ref {_cut(repr(match['uri']), 100)} points outside the schema: only "
            "references within it are allowed (such as '#/$defs/name'); the operator "
            "retrieves nothing"
        )
    if match := _NO_POINTER.search(message):
        return f"$ref '#{_cut(match['pointer'], 100)}' points at nothing in the schema"
    if match := _UNKNOWN_META.search(message):
        return (
            f"$schema {_cut(repr(match['uri']), 100)} is not a JSON Schema draft the "
            "operator knows: use 'https://json-schema.org/draft/2020-12/schema' or leave "
            "it out"
        )
    return _first_line(message)


def _first_line(text: str) -> str:
    return _cut(text.strip().splitlines()[0] if text.strip() else "invalid schema", 300)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
