"""Fault rules: what a ``FaultProxy`` does to the requests they match, and how often.

Rules are added and removed from the test's thread while the proxy's event loop reads
them, so every read and every count happens under one lock (``RuleBook``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class DropReply:
    """Forward the request, let the upstream answer, then close the client connection
    without a reply: the write landed, the reply was lost."""


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before forwarding the request (``"request"``) or before passing
    the upstream's reply on (``"reply"``: the upstream has already acted)."""

    seconds: float
    before: Literal["request", "reply"] = "request"


@dataclass(frozen=True)
class Hang:
    """Hold the request, unforwarded, until the rule is removed (then forward it) or the
    client gives up (then drop it)."""


@dataclass(frozen=True)
class Respond:
    """Answer at once without forwarding (a 429 with ``Retry-After``, a 500, a 503...)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Refuse:
    """Reset every new connection at once, and existing ones at their next request."""


Action = DropReply | Delay | Hang | Respond | Refuse


class RuleBook:
    """The proxy's rules in the order they were added; the first active match fires."""

    def __init__(self, on_remove: Callable[[Rule], None]) -> None:
        self._changed = threading.Condition()
        self._rules: list[Rule] = []
        self._on_remove = on_remove

    def add(self, rule: Rule) -> Rule:
        with self._changed:
            self._rules.append(rule)
        return rule

    def remove(self, rule: Rule) -> None:
        with self._changed:
            if rule not in self._rules:
                return
            self._rules.remove(rule)
            rule.removed = True
        self._on_remove(rule)

    def clear(self) -> None:
        with self._changed:
            rules = list(self._rules)
        for rule in rules:
            self.remove(rule)

    def take(self, method: str, path: str, query: str) -> Rule | None:
        """The rule that applies to this request, counted; None to pass it through."""
        with self._changed:
            for rule in self._rules:
                if rule.active and rule.matches(method, path, query):
                    return self._fire(rule)
        return None

    def take_refusal(self) -> Rule | None:
        """The active ``Refuse`` rule, counted, if a connection is to be reset now."""
        with self._changed:
            for rule in self._rules:
                if rule.active and isinstance(rule.action, Refuse):
                    return self._fire(rule)
        return None

    def _fire(self, rule: Rule) -> Rule:
        rule.hits += 1
        self._changed.notify_all()
        return rule

    def wait_hits(self, rule: Rule, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while rule.hits < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"rule {rule} fired {rule.hits} times in {timeout:g}s, expected {count}"
                    )
                self._changed.wait(left)


@dataclass(eq=False)
class Rule:
    """One fault. ``with proxy.respond(503) as rule:`` removes it on leaving the block.

    ``hits`` counts the requests (or, for ``Refuse``, the connections) it applied to;
    after ``times`` hits it stops matching.
    """

    action: Action
    book: RuleBook = field(repr=False)
    method: str | None = None
    path: re.Pattern[str] | None = None
    query: re.Pattern[str] | None = None
    times: int | None = None
    hits: int = 0
    removed: bool = False

    @property
    def active(self) -> bool:
        return not self.removed and (self.times is None or self.hits < self.times)

    def matches(self, method: str, path: str, query: str) -> bool:
        return (
            (self.method is None or self.method == method.upper())
            and (self.path is None or self.path.search(path) is not None)
            and (self.query is None or self.query.search(query) is not None)
        )

    def remove(self) -> None:
        """Switch the rule off; requests it holds (``Hang``) go on to the upstream."""
        self.book.remove(self)

    def wait_hits(self, count: int = 1, timeout: float = 10.0) -> Rule:
        """Block until the rule has fired ``count`` times (from async code:
        ``await asyncio.to_thread(rule.wait_hits)``); ``TimeoutError`` otherwise."""
        self.book.wait_hits(self, count, timeout)
        return self

    def __enter__(self) -> Rule:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __str__(self) -> str:
        where = " ".join(
            part
            for part in (
                self.method,
                self.path.pattern if self.path else None,
                f"?{self.query.pattern}" if self.query else None,
            )
            if part
        )
        return f"{type(self.action).__name__}({where or 'any request'})"


def make_rule(
    book: RuleBook,
    action: Action,
    *,
    method: str | None,
    path: str | None,
    query: str | None,
    times: int | None,
) -> Rule:
    """A validated rule; errors name the argument and say what would be accepted."""
    if times is not None and times < 1:
        raise ValueError(f"times={times}: give a count of at least 1, or None for no limit")
    if isinstance(action, Refuse) and (method or path or query):
        raise ValueError(
            "refuse applies to connections, before any request is read: "
            "drop method=, path= and query="
        )
    if isinstance(action, Delay) and action.seconds < 0:
        raise ValueError(f"seconds={action.seconds}: a delay cannot be negative")
    if isinstance(action, Respond) and not 200 <= action.status <= 599:
        raise ValueError(f"status={action.status}: give a final HTTP status, 200 to 599")
    return Rule(
        action,
        book,
        method=method.upper() if method else None,
        path=_compile("path", path),
        query=_compile("query", query),
        times=times,
    )


def _compile(name: str, pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{name}={pattern!r} is not a regular expression: {exc}") from exc
