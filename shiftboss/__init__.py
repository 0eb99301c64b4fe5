"""Shiftboss: the operator, and its Python client (``from shiftboss import Client``).

The client's names are imported on first use, so that importing any other part of the
package (the CLI, the API models) does not load the Kubernetes client."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shiftboss.client import (
        AsyncClient,
        Client,
        JobCancelled,
        JobCannotRunAgain,
        JobFailed,
        JobNotFinished,
        JobNotFound,
        PermissionDenied,
        RequestFailed,
        RerunRefused,
        ShiftbossError,
        WaitTimeout,
    )

__all__ = [
    "AsyncClient",
    "Client",
    "JobCancelled",
    "JobCannotRunAgain",
    "JobFailed",
    "JobNotFinished",
    "JobNotFound",
    "PermissionDenied",
    "RequestFailed",
    "RerunRefused",
    "ShiftbossError",
    "WaitTimeout",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("shiftboss.client"), name)
    raise AttributeError(f"module 'shiftboss' has no attribute {name!r}")
