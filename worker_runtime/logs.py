"""Logging: JSON or text lines that carry the worker, job and attempt ids.

The ids live in a context variable set by the runner, so every record logged while
an attempt runs carries them, including records from the skill's own loggers and
from sync skills running in threads (their context is copied).  ``Context.logger``
also carries them explicitly, for apps that install their own handlers.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

#: The record attributes the runtime adds, in display order.
ID_FIELDS = ("worker_id", "job", "attempt_id")

_ids: ContextVar[dict[str, str]] = ContextVar("shiftboss_log_ids", default={})  # noqa: B039

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


@contextmanager
def log_ids(**ids: str) -> Iterator[None]:
    """Add ids to every record logged in this context (task, or thread given a copy)."""
    token = _ids.set({**_ids.get(), **ids})
    try:
        yield
    finally:
        _ids.reset(token)


class IdsFilter(logging.Filter):
    """Copies the context's ids onto records that do not carry them yet."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _ids.get().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class ContextLogger(logging.LoggerAdapter[logging.Logger]):
    """A LoggerAdapter that merges its ids with a call's ``extra`` instead of replacing it."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ID_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [worker=… job=… attempt=…] message`` for humans."""

    _labels = {"worker_id": "worker", "job": "job", "attempt_id": "attempt"}

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            f"{label}={value}"
            for key, label in self._labels.items()
            if (value := getattr(record, key, None)) is not None
        ]
        record.__dict__["ids"] = f" [{' '.join(ids)}]" if ids else ""
        try:
            return super().format(record)
        finally:
            del record.__dict__["ids"]


def configure_logging(
    fmt: str = "text", level: int | str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Install one handler on the root logger (replacing any), for the worker process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(IdsFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request at INFO: a long-polling worker would flood its logs.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    return handler
