"""What to do with a WorkerPool's pods: pure, level-based.

:func:`plan` looks at the pods as they are (never at what was done before) and says
how many pods to create and which ones to delete.  Computing it twice on the same
input gives the same plan; applying it and computing again converges to ``desired``
ready pods of the current template.  A back-off is an input (``hold_until``), and the
plan says when to look again (``recheck_at``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from .podview import PodView

__all__ = ["Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    """What to do now: create ``create`` pods of the current template, then delete the
    pods named in ``delete`` (in that order).  ``reasons`` explain it, for logs."""

    create: int = 0
    delete: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    #: When to plan again even if nothing changes (a back-off ends); None: on change.
    recheck_at: float | None = None

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


def plan(
    desired: int,
    current_hash: str,
    pods: Sequence[PodView],
    max_surge: int = 1,
    *,
    now: float = 0.0,
    hold_until: float = 0.0,
) -> Plan:
    """The pods to create and delete so that the pool converges to ``desired`` ready
    pods of template ``current_hash``.

    * Finished pods (Succeeded/Failed) are deleted; their workers are replaced.
      Terminating pods are ignored: not counted, not deleted again.
    * While ``now < hold_until`` (a back-off: workers keep exiting, or the API server
      refuses pods) no pod is created, and finished pods of the current template keep
      their places (and their status and logs, for whoever looks) until then;
      ``recheck_at`` says when the hold ends.
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
    held_back = now < hold_until

    live = [p for p in pods if p.live]
    current = sorted((p for p in live if p.template_hash == current_hash), key=_removal_order)
    outdated = sorted((p for p in live if p.template_hash != current_hash), key=_outdated_order)

    # Surplus of the current template (scale-down): the first in removal order go.
    surplus = max(0, len(current) - desired)
    kept_current = current[surplus:]

    # Exited workers: replaced, unless a back-off holds them (within desired) in place.
    exited = sorted((p for p in pods if p.exited_on_its_own), key=_newest_first)
    places = max(0, desired - len(kept_current)) if held_back else 0
    held = [p for p in exited if p.template_hash == current_hash][:places]
    finished = [p for p in exited if p not in held]
    if held:
        reasons.append(
            f"back-off: keep {len(held)} exited worker(s) until {_clock(hold_until)}: "
            + ", ".join(p.name for p in held)
        )
    if finished:
        reasons.append(
            f"remove {len(finished)} exited worker(s): " + ", ".join(p.name for p in finished)
        )

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
    wanted = max(0, min(missing, desired + max_surge - live_after))
    create = 0 if held_back else wanted
    recheck_at = hold_until if held_back and (wanted or held) else None
    if held_back and wanted:
        reasons.append(f"back-off: create {wanted} worker(s) after {_clock(hold_until)}")
    elif create:
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
    return Plan(create=create, delete=tuple(delete), reasons=tuple(reasons), recheck_at=recheck_at)


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%SZ")
