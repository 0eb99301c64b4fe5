"""What the dispatcher answers a worker when it cannot do what was asked."""

from __future__ import annotations


class AttemptNotCurrent(Exception):
    """409: the attempt's lease expired, the job was cancelled, or it already finished."""


class UnknownAttempt(Exception):
    """404: no job of the caller's namespace has this attempt."""


class ResultTooLarge(Exception):
    """413: the result is over the inline limit; the attempt was failed."""


class JobBusy(Exception):
    """503: the job kept changing under the report; nothing was written, try again."""
