"""What to do with a WorkerPool's pods, and what its status says: pure, level-based.

:func:`plan` looks at the pods as they are (never at what was done before) and says
how many pods to create and which ones to delete.  Computing it twice on the same
input gives the same plan; applying it and computing again converges to ``desired``
ready pods of the current template.  :func:`pool_status` turns the same observation
into the pool's ``status``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shiftboss.api.common import ConditionStatus, set_condition
from shiftboss.api.workerpool import PoolConditionType, WorkerPool, WorkerPoolStatus, selector_for

from .pods import HASH_LABEL

__all__ = [
    "FINISHED_PHASES",
    "Plan",
    "PodView",
    "plan",
    "pool_status",
    "status_changed",
]

#: Pod phases of a worker that has exited: its pod is deleted and replaced.
FINISHED_PHASES = frozenset({"Succeeded", "Failed"})


def _timestamp(value: Any) -> float:
    """A creationTimestamp (RFC 3339 string, datetime or number) as a POSIX timestamp."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        # Kubernetes always writes UTC; a naive value is taken as UTC too.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class PodView:
    """What the planner needs to know about one worker pod."""

    name: str
    template_hash: str | None
    phase: str | None  # "Pending" | "Running" | "Succeeded" | "Failed" | None
    ready: bool
    terminating: bool  # metadata.deletionTimestamp is set
    busy: bool  # the worker runs at least one job attempt now
    created: float  # metadata.creationTimestamp as a POSIX timestamp

    @property
    def finished(self) -> bool:
        """The worker has exited (phase Succeeded or Failed)."""
        return self.phase in FINISHED_PHASES

    @property
    def live(self) -> bool:
        """Neither terminating nor finished: the pod counts towards the pool's size."""
        return not self.terminating and not self.finished

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
        ready_condition = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or ()
        )
        return cls(
            name=name,
            template_hash=labels.get(HASH_LABEL),
            phase=phase,
            ready=ready_condition and phase not in FINISHED_PHASES,
            terminating=metadata.get("deletionTimestamp") is not None,
            busy=name in busy_workers,
            created=_timestamp(metadata.get("creationTimestamp")),
        )


@dataclass(frozen=True)
class Plan:
    """What to do now: create ``create`` pods of the current template, then delete the
    pods named in ``delete`` (in that order).  ``reasons`` explain it, for logs."""

    create: int = 0
    delete: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """The reasons as one line."""
        return "; ".join(self.reasons) if self.reasons else "nothing to do"

    @property
    def noop(self) -> bool:
        """Nothing to create and nothing to delete."""
        return self.create == 0 and not self.delete


def _newest_first(pod: PodView) -> tuple[float, str]:
    return (-pod.created, pod.name)


def _removal_order(pod: PodView) -> tuple[bool, bool, float, str]:
    """Which pod goes first: idle before busy, not-ready before ready, newest first."""
    return (pod.busy, pod.ready, *_newest_first(pod))


def _outdated_order(pod: PodView) -> tuple[bool, bool, float, str]:
    """Outdated pods: not-ready first (they serve nobody), then idle before busy."""
    return (pod.ready, pod.busy, *_newest_first(pod))


def plan(desired: int, current_hash: str, pods: Sequence[PodView], max_surge: int = 1) -> Plan:
    """The pods to create and delete so that the pool converges to ``desired`` ready
    pods of template ``current_hash``.

    * Finished pods (Succeeded/Failed) are always deleted; their workers are replaced.
      Terminating pods are ignored: not counted, not deleted again.
    * Pods of the current template beyond ``desired`` are deleted: idle before busy,
      not-ready before ready, newest first.
    * Outdated pods (another template) are deleted only while enough ready pods stay
      to keep ``desired`` ready workers: ``ready current + ready outdated left >=
      desired``.  Not-ready outdated pods may always go; an idle outdated pod always
      goes before a busy one.
    * Pods of the current template are created up to ``desired``, but while outdated
      pods remain, never beyond ``desired + max_surge`` live pods in total.

    ``max_surge`` must be at least 1: with no surge, a rollout of ready pods could never
    replace one without dropping below ``desired`` ready workers.
    """
    if desired < 0:
        raise ValueError(f"desired must be >= 0, got {desired}")
    if max_surge < 1:
        raise ValueError(
            f"max_surge must be >= 1, got {max_surge}: without surge a rollout could never "
            "replace a ready worker without dropping below the desired ready count"
        )

    reasons: list[str] = []

    finished = sorted((p for p in pods if p.finished and not p.terminating), key=_newest_first)
    if finished:
        reasons.append(
            f"replace {len(finished)} exited worker(s): " + ", ".join(p.name for p in finished)
        )

    live = [p for p in pods if p.live]
    current = sorted((p for p in live if p.template_hash == current_hash), key=_removal_order)
    outdated = sorted((p for p in live if p.template_hash != current_hash), key=_outdated_order)

    # Surplus of the current template (scale-down): the first in removal order go.
    surplus = max(0, len(current) - desired)
    kept_current = current[surplus:]
    removed: list[PodView] = []
    if surplus:
        gone = current[:surplus]
        removed.extend(gone)
        reasons.append(
            f"scale down: {len(current)} workers > {desired} desired, delete "
            + ", ".join(p.name for p in gone)
        )

    # Rollout: outdated pods go as long as the ready count stays >= desired.
    deleted_outdated = 0
    if outdated:
        ready_current = sum(1 for p in kept_current if p.ready)
        ready_outdated = sum(1 for p in outdated if p.ready)
        budget = max(0, ready_current + ready_outdated - desired)  # ready pods that may go
        gone = []
        for pod in outdated:
            if not pod.ready:
                gone.append(pod)
            elif budget > 0:
                gone.append(pod)
                budget -= 1
        # ``outdated`` is sorted not-ready first, then idle before busy: a busy outdated
        # pod is only chosen once no idle one is left to go instead.
        deleted_outdated = len(gone)
        if gone:
            removed.extend(gone)
            reasons.append(
                f"rollout: delete {len(gone)} of {len(outdated)} outdated worker(s): "
                + ", ".join(p.name for p in gone)
            )
        if deleted_outdated < len(outdated):
            reasons.append(
                f"rollout: keep {len(outdated) - deleted_outdated} outdated worker(s) until "
                f"enough workers of template {current_hash} are ready "
                f"({ready_current} ready, {desired} desired)"
            )

    # Scale up / surge: create current-template pods up to desired, total capped.
    live_after = len(kept_current) + len(outdated) - deleted_outdated
    missing = max(0, desired - len(kept_current))
    create = max(0, min(missing, desired + max_surge - live_after))
    if create:
        reasons.append(
            f"create {create} worker(s) of template {current_hash} "
            f"({len(kept_current)} of {desired} desired exist)"
        )
    elif missing:
        reasons.append(
            f"wait: {missing} worker(s) of template {current_hash} missing, but "
            f"{live_after} live workers already reach the limit of {desired} + {max_surge} surge"
        )

    # Exited workers first (they hold nothing), then live pods in removal order: idle
    # before busy, not-ready before ready, newest first.
    delete = [p.name for p in finished] + [p.name for p in sorted(removed, key=_removal_order)]
    return Plan(create=create, delete=tuple(delete), reasons=tuple(reasons))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def pool_status(
    pool: WorkerPool,
    *,
    template_hash: str,
    pods: Sequence[PodView],
    queued_jobs: int = 0,
    running_jobs: int = 0,
    busy_workers: int | None = None,
    previous: WorkerPoolStatus | None = None,
    now: datetime,
) -> WorkerPoolStatus:
    """The pool's status from what was observed now.

    ``previous`` is the status as last written (default: ``pool.status``); a condition's
    ``lastTransitionTime`` only moves (to ``now``) when its status changes.
    ``busy_workers`` defaults to the number of live pods marked busy.

    * ``Ready`` is True when at least ``spec.replicas`` pods of the current template are
      ready.
    * ``Progressing`` is True while a rollout (outdated pods left), a scale up or down,
      workers starting, or workers draining (terminating pods) is under way.
    * ``Degraded`` is True when more pods ended Failed than ``spec.replicas`` among the
      pods seen now: workers keep crashing.
    """
    name = pool.name or ""
    desired = pool.spec.replicas
    generation = pool.generation
    if previous is None:
        previous = pool.status

    live = [p for p in pods if p.live]
    current = [p for p in live if p.template_hash == template_hash]
    outdated = [p for p in live if p.template_hash != template_hash]
    ready_current = sum(1 for p in current if p.ready)
    ready_all = sum(1 for p in live if p.ready)
    draining = sum(1 for p in pods if p.terminating)
    failed = sum(1 for p in pods if p.phase == "Failed")
    if busy_workers is None:
        busy_workers = sum(1 for p in live if p.busy)

    conditions = list(previous.conditions) if previous is not None else []

    # Ready
    ready = ready_current >= desired
    message = f"{ready_current}/{desired} workers ready"
    if pool.spec.paused:
        message += "; dispatch paused"
    conditions = set_condition(
        conditions,
        PoolConditionType.READY,
        ready,
        "WorkersReady" if ready else "WorkersNotReady",
        message,
        observed_generation=generation,
        now=now,
    )

    # Progressing
    if outdated:
        progressing = (
            "RollingOut",
            f"replacing {_plural(len(outdated), 'outdated worker')} with template "
            f"{template_hash} ({ready_current}/{desired} updated workers ready)",
        )
    elif len(current) < desired:
        progressing = ("ScalingUp", f"{len(current)}/{desired} workers created")
    elif len(current) > desired:
        progressing = ("ScalingDown", f"{len(current)} workers, {desired} desired")
    elif ready_current < desired:
        progressing = ("WorkersStarting", f"{ready_current}/{desired} workers ready")
    elif draining:
        progressing = ("WorkersDraining", f"{_plural(draining, 'worker')} draining")
    else:
        progressing = None
    if progressing is not None:
        status, (reason, message) = ConditionStatus.TRUE, progressing
    else:
        status, reason = ConditionStatus.FALSE, "WorkersUpToDate"
        message = f"{_plural(desired, 'worker')} of template {template_hash}"
    conditions = set_condition(
        conditions,
        PoolConditionType.PROGRESSING,
        status,
        reason,
        message,
        observed_generation=generation,
        now=now,
    )

    # Degraded
    if failed > desired:
        status, reason = ConditionStatus.TRUE, "WorkersFailing"
        message = (
            f"{_plural(failed, 'worker pod')} failed ({desired} desired): workers keep exiting"
        )
    else:
        status, reason = ConditionStatus.FALSE, "WorkersHealthy"
        message = f"{_plural(failed, 'worker pod')} failed" if failed else "no worker pod failed"
    conditions = set_condition(
        conditions,
        PoolConditionType.DEGRADED,
        status,
        reason,
        message,
        observed_generation=generation,
        now=now,
    )

    return WorkerPoolStatus(
        replicas=desired,
        ready_replicas=ready_all,
        busy_workers=busy_workers,
        queued_jobs=queued_jobs,
        running_jobs=running_jobs,
        selector=selector_for(name),
        template_hash=template_hash,
        observed_generation=generation,
        conditions=conditions,
    )


def _comparable(status: WorkerPoolStatus) -> dict[str, Any]:
    data = status.model_dump(mode="json", by_alias=True, exclude_none=True)
    conditions = []
    for condition in data.get("conditions", []):
        condition.pop("lastTransitionTime", None)
        conditions.append(condition)
    data["conditions"] = sorted(conditions, key=lambda c: c["type"])
    return data


def status_changed(old: WorkerPoolStatus | None, new: WorkerPoolStatus) -> bool:
    """Whether ``new`` says anything ``old`` does not, timestamps aside: the operator
    writes the status only when this is true."""
    if old is None:
        return True
    return _comparable(old) != _comparable(new)
