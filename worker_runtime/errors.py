"""Exceptions of the worker runtime.

Two families: the ones a skill raises to steer the retry policy (``FatalError``,
``RetryableError``), and the ones the runtime raises itself (bad configuration,
answers of the operator)::

    ConfigError                  the environment, token file, CA file or app is unusable
    OperatorError
    ├── OperatorUnavailable      no answer that settles anything: timeout, reset, 5xx, 429
    │   ├── OperatorAbsent       connection refused or 503: nobody is there to re-dispatch
    │   └── CertificateUntrusted the operator's TLS certificate failed verification
    └── ProtocolError            a 4xx, or an answer that breaks the protocol
        ├── Unauthorized         401/403
        └── AttemptNotCurrent    409

Absent and unavailable differ for the worker's own view of its leases: see "Leases and
heartbeats" in ``docs/worker-protocol.md``.
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
    """The worker's configuration (environment, token file, CA file, app) is unusable.

    The message names the setting at fault and how to fix it; the CLI prints it as
    one line and exits with status 2.
    """


class OperatorError(Exception):
    """The operator could not be reached or refused a request."""


class OperatorUnavailable(OperatorError):
    """No answer that settles anything: a transport error, a timeout, a 5xx or a 429.

    ``retry_after`` is the operator's ``Retry-After``, in seconds, when it sent one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OperatorAbsent(OperatorUnavailable):
    """Connection refused, or 503: the operator is restarting, a standby, or cannot reach
    the Kubernetes API server.  Nobody can re-dispatch work meanwhile, so the worker's
    view of its leases does not run down."""


class CertificateUntrusted(OperatorUnavailable):
    """The operator's TLS certificate failed verification against the configured CAs."""


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
