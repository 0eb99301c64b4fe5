"""The operator's HTTP server for workers: the protocol under ``/v1`` and health.

``routes`` holds the handlers, ``access`` who may act for what, ``bodies`` strict JSON
parsing, ``problems`` the one mapping of failures to statuses.
"""

from shiftboss.workerapi.routes import Timings, WorkerApi

#: aiohttp's default header limit (8190 bytes) answers in plain text; ours answers in JSON.
MAX_HEADER_BYTES = 32 * 1024

__all__ = ["MAX_HEADER_BYTES", "Timings", "WorkerApi"]
