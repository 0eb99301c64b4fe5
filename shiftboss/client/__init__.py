"""The Python client: submit Jobs, wait for their results, cancel, get, list, re-run,
suspend and resume them (``Client``, blocking; ``AsyncClient``). See docs/client.md."""

from shiftboss.client.aio import AsyncClient
from shiftboss.client.errors import (
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
from shiftboss.client.jobs import JobOptions
from shiftboss.client.sync import Client

__all__ = [
    "AsyncClient",
    "Client",
    "JobCancelled",
    "JobCannotRunAgain",
    "JobFailed",
    "JobNotFinished",
    "JobNotFound",
    "JobOptions",
    "PermissionDenied",
    "RequestFailed",
    "RerunRefused",
    "ShiftbossError",
    "WaitTimeout",
]
