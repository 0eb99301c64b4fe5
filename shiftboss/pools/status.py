"""What a WorkerPool's status says (pure): counters and conditions that agree.

* ``Ready``: at least ``spec.replicas`` workers of the current template are ready.
* ``Progressing``: True while work is under way (a rollout, scaling, workers starting
  or draining); False when there is none, or when a :class:`Trouble` holds it back
  (its reason then says which).
* ``Degraded``: True with the trouble's reason and message (``WorkerCrashLoop``,
  ``PodCreateFailed``) while it lasts.
* kstatus: ``Reconciling`` (= Progressing True) and ``Stalled`` (= Degraded True) are
  present only while True, so tools such as kpt and Flux read the pool's state.

Messages only carry what changes when the state does (no clocks, no countdowns), so
that a status is written when something changed and never on a mere resync.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shiftboss.api.common import Condition, ConditionStatus, set_condition
from shiftboss.api.workerpool import PoolConditionType, WorkerPool, WorkerPoolStatus, selector_for

from .health import Trouble
from .podview import PodView

__all__ = ["pool_status", "status_changed"]

#: kstatus conditions ("abnormal-true": present only while True).
RECONCILING = PoolConditionType.RECONCILING
STALLED = PoolConditionType.STALLED


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _work(
    template_hash: str, desired: int, current: int, outdated: int, ready_current: int, draining: int
) -> tuple[str, str] | None:
    """What the pool is busy with (reason, message), if anything."""
    if outdated:
        return (
            "RollingOut",
            f"replacing {_plural(outdated, 'outdated worker')} with template "
            f"{template_hash} ({ready_current}/{desired} updated workers ready)",
        )
    if current < desired:
        return ("ScalingUp", f"{current}/{desired} workers created")
    if current > desired:
        return ("ScalingDown", f"{current} workers, {desired} desired")
    if ready_current < desired:
        return ("WorkersStarting", f"{ready_current}/{desired} workers ready")
    if draining:
        return ("WorkersDraining", f"{_plural(draining, 'worker')} draining")
    return None


def _only_while_true(
    conditions: list[Condition],
    type_: str,
    state: tuple[str, str] | None,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    if state is None:
        return [c for c in conditions if c.type != type_]
    reason, message = state
    return set_condition(
        conditions,
        type_,
        ConditionStatus.TRUE,
        reason,
        message,
        observed_generation=generation,
        now=now,
    )


def pool_status(
    pool: WorkerPool,
    *,
    template_hash: str,
    pods: Sequence[PodView],
    queued_jobs: int = 0,
    running_jobs: int = 0,
    busy_workers: int | None = None,
    trouble: Trouble | None = None,
    previous: WorkerPoolStatus | None = None,
    now: datetime,
) -> WorkerPoolStatus:
    """The pool's status from what was observed now.

    ``previous`` is the status as last written (default: ``pool.status``); a condition's
    ``lastTransitionTime`` only moves (to ``now``) when its status changes.
    ``busy_workers`` defaults to the number of live pods marked busy; ``trouble`` is
    what holds the pool back (see :class:`~shiftboss.pools.health.PoolHealth`).
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
    draining = sum(1 for p in pods if p.terminating)
    if busy_workers is None:
        busy_workers = sum(1 for p in live if p.busy)

    conditions = list(previous.conditions) if previous is not None else []

    def put(type_: str, status: bool, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = set_condition(
            conditions,
            type_,
            status,
            reason,
            message,
            observed_generation=generation,
            now=now,
        )

    ready = ready_current >= desired
    message = f"{ready_current}/{desired} workers ready"
    if pool.spec.paused:
        message += "; dispatch paused"
    put(PoolConditionType.READY, ready, "WorkersReady" if ready else "WorkersNotReady", message)

    work = _work(template_hash, desired, len(current), len(outdated), ready_current, draining)
    if work is not None and trouble is not None:
        # Not the work's own message: it flips with every replacement of a crash loop.
        held = f"held back by {trouble.reason}: see the Degraded condition"
        put(PoolConditionType.PROGRESSING, False, trouble.reason, held)
        work = None
    elif work is not None:
        put(PoolConditionType.PROGRESSING, True, *work)
    else:
        up_to_date = f"{_plural(desired, 'worker')} of template {template_hash}"
        put(PoolConditionType.PROGRESSING, False, "WorkersUpToDate", up_to_date)

    if trouble is not None:
        put(PoolConditionType.DEGRADED, True, trouble.reason, trouble.message)
    else:
        healthy = "no worker exited on its own; worker pods are created"
        put(PoolConditionType.DEGRADED, False, "WorkersHealthy", healthy)

    conditions = _only_while_true(conditions, RECONCILING, work, generation, now)
    stalled = (trouble.reason, trouble.message) if trouble else None
    conditions = _only_while_true(conditions, STALLED, stalled, generation, now)

    return WorkerPoolStatus(
        replicas=desired,
        ready_replicas=sum(1 for p in live if p.ready),
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
