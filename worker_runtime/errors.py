"""Exceptions of the worker runtime.

Two families: the ones a skill raises to steer the retry policy (``FatalError``,
``RetryableError``), and the ones the runtime raises itself (bad configuration,
answers of the operator).
"""

from __future__ import annotations


class FatalError(Exception):
    """Fail the attempt and never retry the job (bad input, a permanent condition)."""


class RetryableError(Exception):
    """Fail the attempt and ask for a retry, optionally no sooner than ``after`` seconds.

    The job's retry policy still decides (it may have no attempts left); ``after`` only
    raises the backoff it would otherwise use.
    """

    def __init__(self, message: str = "", after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.after = after


class ConfigError(Exception):
    """The worker's configuration (environment, token file, app) is unusable.

    The message names the setting at fault and how to fix it; the CLI prints it as
    one line and exits with status 2.
    """


class OperatorError(Exception):
    """The operator could not be reached or refused a request."""


class OperatorUnavailable(OperatorError):
    """Transport errors or 5xx answers persisted through every retry."""


class ProtocolError(OperatorError):
    """The operator refused a request (4xx) or sent an answer that breaks the protocol."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class Unauthorized(ProtocolError):
    """401/403: the token is invalid, expired, or not allowed to act for this pool."""


class AttemptNotCurrent(ProtocolError):
    """409: the attempt's lease expired, its job was cancelled or already finished.

    The worker drops the attempt and reports nothing more about it: the operator has
    already decided its outcome, and fencing guarantees a job never succeeds twice.
    """
