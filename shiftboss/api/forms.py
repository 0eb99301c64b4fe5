"""Strings of one form (a regex), and the form in words for the messages that refuse them.

A field of one form is ``Annotated[str, Matching(regex, words, max_length=...)]``:

* pydantic checks it and refuses other values with ``must be <words>``;
* its JSON Schema carries the ``pattern`` and the words (:data:`PATTERN_WORDS`);
* ``crdgen`` (:func:`pattern_to_rule`) turns the two into a CEL rule
  ``self.matches(r'...')`` with the message ``must be <words>``.  An OpenAPI ``pattern``
  would be refused by the API server with the regex alone (``should match '^...$'``);
  CEL's ``matches`` is RE2 (linear time), and the API server names the field and the
  value before the message: ``spec.app: Invalid value: "app.worker": must be ...``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import (
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidatorFunctionWrapHandler,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

VALIDATIONS = "x-kubernetes-validations"
INT_OR_STRING = "x-kubernetes-int-or-string"

#: The JSON Schema key that carries a ``pattern``'s form in words (see :class:`Matching`).
PATTERN_WORDS = "x-shiftboss-pattern-words"


@dataclass(frozen=True)
class Matching:
    """A string of one form: ``Annotated[str, Matching(regex, words, max_length=63)]``.

    ``words`` says the form as a person reads it ("module:attribute (for example
    demo_worker:worker)").  pydantic refuses other values with "must be <words>", and
    ``crdgen`` gives the CRD a CEL rule ``self.matches(regex)`` with the same words in
    its message instead of an OpenAPI ``pattern``, whose refusal shows only the regex.
    ``max_length`` is required: the API server refuses CEL rules of unbounded cost.
    """

    regex: str
    words: str
    max_length: int
    min_length: int = 1

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        bounded = core_schema.str_schema(
            pattern=self.regex, min_length=self.min_length, max_length=self.max_length
        )
        return core_schema.no_info_wrap_validator_function(self._in_words, bounded)

    def _in_words(self, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as exc:
            if any(e["type"] == "string_pattern_mismatch" for e in exc.errors()):
                raise PydanticCustomError(
                    "string_pattern_mismatch", "must be {words}", {"words": self.words}
                ) from None
            raise

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), **self.json_schema()}

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema keys of the form (for a hand-written schema, e.g. int-or-string)."""
        return {
            "pattern": self.regex,
            "minLength": self.min_length,
            "maxLength": self.max_length,
            PATTERN_WORDS: self.words,
        }


_MATCHES_RULE = re.compile(r"^(?:type\(self\) != string \|\| )?self\.matches\(r'([^']*)'\)$")


def matches_rule(regex: str, *, int_or_string: bool = False) -> str:
    """The CEL rule "a string matching ``regex``", as a raw string literal; on an
    int-or-string node it holds for integers."""
    if "'" in regex:
        raise ValueError(f"a regex with a quote cannot be a CEL raw string: {regex}")
    rule = f"self.matches(r'{regex}')"
    return f"type(self) != string || {rule}" if int_or_string else rule


def rule_regex(rule: str) -> str | None:
    """The regex of a rule made by :func:`matches_rule` (None for any other rule)."""
    found = _MATCHES_RULE.match(rule)
    return found.group(1) if found else None


def pattern_to_rule(node: dict[str, Any]) -> None:
    """Replace the ``pattern`` of a CRD schema node (with :data:`PATTERN_WORDS`) by a CEL
    rule whose message says the form in words.  ValueError when it has no words, or no
    ``maxLength`` (the API server refuses a rule of unbounded cost)."""
    regex = node.pop("pattern")
    words = node.pop(PATTERN_WORDS, None)
    if not words:
        raise ValueError("a pattern without words; declare the field with Matching(...)")
    if "maxLength" not in node:
        raise ValueError("a pattern on a string without maxLength (unbounded CEL cost)")
    rule = matches_rule(regex, int_or_string=bool(node.get(INT_OR_STRING)))
    node[VALIDATIONS] = [{"rule": rule, "message": f"must be {words}"}, *node.get(VALIDATIONS, [])]
