"""A pod's ``status`` from what its runner knows (pure: no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shiftboss.testing.node.container import ContainerState

FINISHED = ("Succeeded", "Failed")


def pod_status(
    *,
    phase: str,
    initialized: bool,
    containers: Sequence[ContainerState],
    init_containers: Sequence[ContainerState],
    previous_conditions: Sequence[dict[str, Any]],
    host_ip: str,
    pod_ip: str,
    start_time: str | None,
    now: str,
) -> dict[str, Any]:
    """The pod's status; a condition's ``lastTransitionTime`` moves only when it flips."""
    all_ready = phase == "Running" and all(c.ready for c in containers)
    conditions = {c["type"]: c for c in previous_conditions}

    def cond(kind: str, ok: bool, reason: str = "") -> None:
        previous = conditions.get(kind, {})
        status = "True" if ok else "False"
        changed = previous.get("status") != status
        conditions[kind] = {
            "type": kind,
            "status": status,
            "lastTransitionTime": now if changed else previous.get("lastTransitionTime", now),
            **({"reason": reason} if reason and not ok else {}),
        }

    cond("PodReadyToStartContainers", phase != "Pending")
    cond("Initialized", initialized, "ContainersNotInitialized")
    cond("ContainersReady", all_ready, "ContainersNotReady")
    cond("Ready", all_ready, "PodCompleted" if phase in FINISHED else "ContainersNotReady")
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": list(conditions.values()),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "containerStatuses": [c.status() for c in containers],
    }
    if init_containers:
        status["initContainerStatuses"] = [c.status() for c in init_containers]
    if start_time:
        status["startTime"] = start_time
    return status
