"""What the planner and the pool's status need to know about one worker pod (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .exits import WorkerExit, worker_exit
from .pods import HASH_LABEL
from .timestamps import timestamp

__all__ = ["FINISHED_PHASES", "PodView"]

#: Pod phases of a worker that has exited: its pod is deleted and replaced.
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class PodView:
    """One worker pod as observed now."""

    name: str
    template_hash: str | None
    phase: str | None  # "Pending" | "Running" | "Succeeded" | "Failed" | None
    ready: bool
    terminating: bool  # metadata.deletionTimestamp is set
    busy: bool  # the worker runs at least one job attempt now
    created: float  # metadata.creationTimestamp as a POSIX timestamp
    ready_since: float | None = None  # when it last turned Ready, while it is
    worker_exit: WorkerExit | None = None  # how it ended, once finished

    @property
    def finished(self) -> bool:
        """The worker has exited (phase Succeeded or Failed)."""
        return self.phase in FINISHED_PHASES

    @property
    def live(self) -> bool:
        """Neither terminating nor finished: the pod counts towards the pool's size."""
        return not self.terminating and not self.finished

    @property
    def exited_on_its_own(self) -> bool:
        """Finished without having been deleted: the worker crashed or quit by itself."""
        return self.finished and not self.terminating

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any], busy_workers: set[str] | frozenset[str]) -> PodView:
        """Read a pod as the API server returns it (a dict, camelCase keys).

        ``busy_workers`` holds the worker ids (pod names) that run at least one job
        attempt now, as the dispatcher knows them.
        """
        metadata = pod.get("metadata") or {}
        status = pod.get("status") or {}
        name = metadata.get("name") or ""
        labels = metadata.get("labels") or {}
        phase = status.get("phase") or None
        ready_condition = next(
            (
                c
                for c in status.get("conditions") or ()
                if c.get("type") == "Ready" and c.get("status") == "True"
            ),
            None,
        )
        finished = phase in FINISHED_PHASES
        ready = ready_condition is not None and not finished
        since = (ready_condition or {}).get("lastTransitionTime")
        return cls(
            name=name,
            template_hash=labels.get(HASH_LABEL),
            phase=phase,
            ready=ready,
            terminating=metadata.get("deletionTimestamp") is not None,
            busy=name in busy_workers,
            created=timestamp(metadata.get("creationTimestamp")),
            ready_since=timestamp(since) if ready and since else None,
            worker_exit=worker_exit(pod) if finished else None,
        )
