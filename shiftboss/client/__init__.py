"""The Python client: submit Jobs, wait for their results, cancel, get and list them
(``Client``, blocking; ``AsyncClient``). See docs/client.md."""

from shiftboss.client.aio import AsyncClient
from shiftboss.client.errors import (
    JobCancelled,
    JobFailed,
    JobNotFound,
    PermissionDenied,
    RequestFailed,
    ShiftbossError,
    WaitTimeout,
)
from shiftboss.client.jobs import JobOptions
from shiftboss.client.sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "JobCancelled",
    "JobFailed",
    "JobNotFound",
    "JobOptions",
    "PermissionDenied",
    "RequestFailed",
    "ShiftbossError",
    "WaitTimeout",
]
