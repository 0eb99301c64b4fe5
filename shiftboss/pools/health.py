"""A pool's troubles and their back-offs (pure): workers that exit on their own, and
pods the API server refuses.

The controller keeps one :class:`PoolHealth` per pool and feeds it what it observes;
the planner gets :attr:`PoolHealth.hold_until` (no pod is created before it) and the
pool's status gets :meth:`PoolHealth.trouble`.  Like the kubelet's CrashLoopBackOff,
a worker that exits on its own is replaced after 10 s, then 20 s, 40 s... up to 5
minutes, until a replacement has stayed Ready for a minute.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .podview import PodView

__all__ = [
    "CRASH_BACKOFF",
    "CRASH_RESET_SECONDS",
    "CREATE_BACKOFF",
    "POD_CREATE_FAILED",
    "WORKER_CRASH_LOOP",
    "Backoff",
    "CrashLoop",
    "CreateRefused",
    "PoolHealth",
    "Trouble",
    "describe_exit",
    "refused_message",
]

#: Condition and Event reasons.
WORKER_CRASH_LOOP = "WorkerCrashLoop"
POD_CREATE_FAILED = "PodCreateFailed"


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off: ``initial_seconds`` doubling up to ``max_seconds``."""

    initial_seconds: float
    max_seconds: float

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure in a row (0 before any)."""
        if failures < 1:
            return 0.0
        return float(min(self.initial_seconds * 2 ** min(failures - 1, 32), self.max_seconds))


#: Workers that exit on their own: the kubelet's CrashLoopBackOff (10 s doubling to 5 min).
CRASH_BACKOFF = Backoff(initial_seconds=10.0, max_seconds=300.0)
#: A crash loop is over once a replacement has stayed Ready this long (seconds).
CRASH_RESET_SECONDS = 60.0
#: Pods the API server refuses: the usual causes (a quota, a missing service account)
#: are not watched, so the cap stays at a minute: fixed, the pool heals within one.
CREATE_BACKOFF = Backoff(initial_seconds=5.0, max_seconds=60.0)


@dataclass(frozen=True)
class Trouble:
    """What keeps a pool from its desired state: the ``Degraded`` reason and message."""

    reason: str
    message: str


def _exit_time(pod: PodView, now: float) -> float:
    finished = pod.worker_exit.finished_at if pod.worker_exit else None
    return min(finished, now) if finished else now


def describe_exit(pod: PodView) -> str:
    """How a finished worker pod ended, in one line (its Event's message)."""
    return pod.worker_exit.describe() if pod.worker_exit else f"worker ended ({pod.phase})"


def refused_message(cause: str, generate_name: str = "") -> str:
    """What to say when the API server refuses a pod for ``cause`` (its Status message).

    Some refusals (a quota's) name the pod by the name generated for this one try; it
    is said as its ``generateName`` instead, so that every try says the same thing (one
    Event with a count, one status write).
    """
    if generate_name:
        # The API server appends 5 random lowercase letters and digits to generateName.
        cause = re.sub(re.escape(generate_name) + r"[a-z0-9]{5}\b", generate_name, cause)
    return f"cannot create worker pods: {cause}"


@dataclass(frozen=True)
class CrashLoop:
    """Workers of one template that exited on their own, in a row."""

    template_hash: str | None = None
    exits: int = 0
    last_exit_at: float = 0.0
    retry_at: float = 0.0  # no replacement is created before this time
    backoff_seconds: float = 0.0  # the back-off after the last exit
    last_exit: str = ""  # the last exit, described
    counted: frozenset[str] = field(default_factory=frozenset)  # exited pods already counted

    def observe(
        self,
        pods: Sequence[PodView],
        template_hash: str,
        now: float,
        *,
        backoff: Backoff = CRASH_BACKOFF,
        reset_after: float = CRASH_RESET_SECONDS,
    ) -> tuple[CrashLoop, tuple[PodView, ...]]:
        """The state after observing ``pods`` at ``now``, and the exits seen for the
        first time (oldest first).  A new template starts afresh."""
        state = self if self.template_hash == template_hash else CrashLoop(template_hash)
        counted = state.counted & {p.name for p in pods}  # forget pods that are gone
        fresh = tuple(
            sorted(
                (
                    p
                    for p in pods
                    if p.exited_on_its_own
                    and p.template_hash == template_hash
                    and p.name not in counted
                ),
                key=lambda p: (_exit_time(p, now), p.name),
            )
        )
        for pod in fresh:
            at = _exit_time(pod, now)
            exits = state.exits + 1
            state = replace(
                state,
                exits=exits,
                last_exit_at=max(state.last_exit_at, at),
                retry_at=max(state.retry_at, at + backoff.delay(exits)),
                backoff_seconds=backoff.delay(exits),
                last_exit=describe_exit(pod),
            )
        state = replace(state, counted=counted | {p.name for p in fresh})
        if state.exits and not fresh and state._proven(pods, now, reset_after):
            state = CrashLoop(template_hash, counted=state.counted)
        return state, fresh

    def _proven(self, pods: Sequence[PodView], now: float, reset_after: float) -> bool:
        """A worker created after the last exit has stayed Ready for ``reset_after``."""
        return any(
            p.live
            and p.template_hash == self.template_hash
            and p.created >= self.last_exit_at
            and p.ready_since is not None
            and now - p.ready_since >= reset_after
            for p in pods
        )

    def trouble(self) -> Trouble | None:
        if not self.exits:
            return None
        wait = f"replaced after a {self.backoff_seconds:g}s back-off"
        count = f"{self.exits} exits in a row; " if self.exits > 1 else ""
        return Trouble(WORKER_CRASH_LOOP, f"{self.last_exit} ({count}{wait})")


@dataclass(frozen=True)
class CreateRefused:
    """The API server refuses the pool's pods (a quota, a missing service account...)."""

    message: str  # see refused_message
    attempts: int
    retry_at: float

    def trouble(self) -> Trouble:
        return Trouble(POD_CREATE_FAILED, self.message)


@dataclass(frozen=True)
class PoolHealth:
    """Everything that holds a pool back, with when to try again."""

    crash: CrashLoop = field(default_factory=CrashLoop)
    refused: CreateRefused | None = None
    generation: int | None = None  # the pool's metadata.generation when last observed

    def observe(
        self, pods: Sequence[PodView], template_hash: str, generation: int | None, now: float
    ) -> tuple[PoolHealth, tuple[PodView, ...]]:
        """Take in the pods observed at ``now``; returns the new health and the worker
        exits seen for the first time.  A changed spec is tried again at once."""
        crash, fresh = self.crash.observe(pods, template_hash, now)
        refused = self.refused if generation == self.generation else None
        return PoolHealth(crash, refused, generation), fresh

    def created(self) -> PoolHealth:
        """Pods were created: the API server no longer refuses them."""
        return replace(self, refused=None)

    def create_refused(
        self, message: str, now: float, backoff: Backoff = CREATE_BACKOFF
    ) -> PoolHealth:
        attempts = self.refused.attempts + 1 if self.refused else 1
        return replace(
            self, refused=CreateRefused(message, attempts, now + backoff.delay(attempts))
        )

    @property
    def hold_until(self) -> float:
        """No pod is created before this time (POSIX seconds; 0 when nothing holds)."""
        return max(self.crash.retry_at, self.refused.retry_at if self.refused else 0.0)

    def trouble(self) -> Trouble | None:
        """What to say in ``Degraded``: a refusal blocks everything, so it comes first."""
        return self.refused.trouble() if self.refused else self.crash.trouble()
