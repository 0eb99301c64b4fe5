"""The events of the Job state machine (``shiftboss.jobs.machine``): what happened to a
job, each with the time it happened (and, where a retry delay is drawn, its jitter
sample), so the machine needs no clock and no randomness of its own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from shiftboss.api.jobstatus import MirroredJob, WaitReason


class Blocked(NamedTuple):
    """Why a waiting job cannot be dispatched now, found by the pool controller."""

    reason: WaitReason
    message: str


@dataclass(frozen=True)
class Enqueued:
    """The operator has seen the job and it waits for a worker: written only when
    something other than its turn holds it (``blocked``), or when that changes."""

    at: datetime
    message: str = ""
    blocked: WaitReason | None = None


@dataclass(frozen=True)
class Claimed:
    worker: str
    at: datetime


@dataclass(frozen=True)
class Completed:
    result: Any
    at: datetime


@dataclass(frozen=True)
class AttemptFailed:
    error_type: str
    message: str
    retryable: bool
    at: datetime
    #: The worker asked to wait at least this long before the next attempt.
    retry_after: float | None = None
    #: A uniform sample in [-1, 1] that spreads the backoff delay by ``jitter``.
    jitter_sample: float = 0.0


@dataclass(frozen=True)
class LeaseExpired:
    """The worker stopped heartbeating (it died or lost the network)."""

    at: datetime
    jitter_sample: float = 0.0


@dataclass(frozen=True)
class TimedOut:
    """The attempt ran past ``spec.timeoutSeconds``."""

    at: datetime
    jitter_sample: float = 0.0


@dataclass(frozen=True)
class AttemptDisrupted:
    """The attempt was cut short by no fault of the job: its worker's pod was deleted
    (rollout, scale-down, eviction) or its worker handed it back.  Not counted."""

    reason: str
    at: datetime
    error_type: str = "Disrupted"


@dataclass(frozen=True)
class CancelRequested:
    at: datetime


@dataclass(frozen=True)
class DeadlineExceeded:
    """The whole job ran past ``spec.activeDeadlineSeconds``."""

    at: datetime


@dataclass(frozen=True)
class ParamsRejected:
    """The params break the skill's input schema: never retried."""

    message: str
    at: datetime


@dataclass(frozen=True)
class SuspendRequested:
    """spec.suspend holds a waiting job out of its queue."""

    at: datetime


@dataclass(frozen=True)
class Resumed:
    """spec.suspend was set back to false."""

    at: datetime


@dataclass(frozen=True)
class RerunRequested:
    """A finished job was asked to run again (spec.runGeneration or its annotation)."""

    run_generation: int
    at: datetime


@dataclass(frozen=True)
class Mirrored:
    """An earlier Job with the same idempotencyKey is unfinished: this one follows it."""

    primary: MirroredJob
    primary_phase: str
    at: datetime


@dataclass(frozen=True)
class MirrorReleased:
    """The Job this one mirrored Failed, was Cancelled or is gone: it runs on its own."""

    why: str
    at: datetime


@dataclass(frozen=True)
class MirrorSucceeded:
    """The Job this one mirrors succeeded: this one ends Succeeded with its result."""

    primary: MirroredJob
    result: Any
    at: datetime


Event = (
    Enqueued
    | Claimed
    | Completed
    | AttemptFailed
    | LeaseExpired
    | TimedOut
    | AttemptDisrupted
    | CancelRequested
    | DeadlineExceeded
    | ParamsRejected
    | SuspendRequested
    | Resumed
    | RerunRequested
    | Mirrored
    | MirrorReleased
    | MirrorSucceeded
)
