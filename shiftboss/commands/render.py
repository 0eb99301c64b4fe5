"""Jobs as kubectl prints objects: an aligned table (``-o wide`` adds columns), JSON or
YAML of the object (a ``List`` for several), or ``kind/name``.  A table may carry what
the operator says of waiting jobs (``QueueView``): their position and why they wait."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import yaml

from shiftboss.api.job import Job, JobPhase, is_terminal
from shiftboss.workerapi.view_models import QueueView

OUTPUTS = ("json", "yaml", "wide", "name")
RESOURCE = "job.shiftboss.io"

Column = tuple[str, Callable[[Job, datetime], str]]


def _status(job: Job, field: str) -> str:
    value = getattr(job.status, field, None) if job.status else None
    return "" if value is None else str(value)


COLUMNS: tuple[Column, ...] = (
    ("NAME", lambda job, _: job.name or ""),
    ("POOL", lambda job, _: job.spec.pool),
    ("SKILL", lambda job, _: job.spec.skill),
    ("PHASE", lambda job, _: _status(job, "phase") or "Pending"),
    ("ATTEMPTS", lambda job, _: _status(job, "attempt") or "0"),
    ("AGE", lambda job, now: age(job.metadata.get("creationTimestamp"), now)),
)
WIDE: tuple[Column, ...] = (
    ("PRIORITY", lambda job, _: str(job.spec.priority)),
    ("WORKER", lambda job, _: _status(job, "worker")),
    ("DURATION", lambda job, _: _status(job, "duration")),
)


def message(job: Job) -> str:
    """The job's summary; while it runs, its latest progress report if any."""
    status = job.status
    if status is None:
        return ""
    progress = status.progress
    if progress is not None and not (status.phase and status.phase.is_terminal):
        return f"{progress.percent:g}% {progress.message or ''}".rstrip()
    return status.message or ""


def waiting(job: Job) -> bool:
    """Whether the job waits for a worker (not running, not finished)."""
    phase = job.status.phase if job.status else None
    return phase != JobPhase.RUNNING and not is_terminal(phase)


def position(job: Job, queue: Mapping[str, QueueView]) -> str:
    """``2/5`` (second of five queued), ``-`` waiting but not queued (retrying later),
    ``?`` waiting and the operator did not say, empty for jobs that do not wait."""
    if not waiting(job):
        return ""
    view = queue.get(job.uid or "")
    if view is None:
        return "?"
    return "-" if view.position is None else f"{view.position}/{view.queued}"


def table(
    jobs: Sequence[Job],
    *,
    wide: bool = False,
    now: datetime | None = None,
    queue: Mapping[str, QueueView] | None = None,
    positions: bool | None = None,
) -> str:
    """``kubectl get``'s table: columns padded to their widest cell, 3 spaces apart,
    the message last so that a long one does not push the others.  ``queue``: the
    operator's views of waiting jobs by uid, whose reason replaces the message;
    ``positions``: show the POSITION column (default: in the wide table)."""
    now = now or datetime.now(UTC)
    views = queue or {}

    def reason(job: Job, _: datetime) -> str:
        view = views.get(job.uid or "")
        if view is not None and view.reason and waiting(job):
            return view.reason
        return message(job)

    extra: tuple[Column, ...] = WIDE if wide else ()
    if wide if positions is None else positions:
        extra = (*extra, ("POSITION", lambda job, _: position(job, views)))
    columns = (*COLUMNS, *extra, ("MESSAGE", reason))
    rows = [[title for title, _ in columns]]
    rows += [[cell(job, now) for _, cell in columns] for job in jobs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def document(jobs: Sequence[Job], single: bool) -> dict[str, Any]:
    """The object for ``-o json|yaml``: the Job, or a ``List`` as kubectl prints (without
    ``managedFields``, as kubectl hides them)."""
    items = [job.to_manifest() for job in jobs]
    for item in items:
        item["metadata"].pop("managedFields", None)
    if single:
        return items[0]
    return {"apiVersion": "v1", "kind": "List", "items": items, "metadata": {}}


def render(
    jobs: Sequence[Job],
    output: str | None,
    *,
    single: bool,
    queue: Mapping[str, QueueView] | None = None,
) -> str:
    """``jobs`` in the format of ``-o`` (None: the table; one job's shows its position
    when ``queue`` was asked for it)."""
    if output == "json":
        return json.dumps(document(jobs, single), indent=4, ensure_ascii=False)
    if output == "yaml":
        return yaml.safe_dump(document(jobs, single), sort_keys=False).rstrip("\n")
    if output == "name":
        return "\n".join(f"{RESOURCE}/{job.name}" for job in jobs)
    wide = output == "wide"
    return table(jobs, wide=wide, queue=queue, positions=wide or (single and queue is not None))


def age(timestamp: str | None, now: datetime) -> str:
    """kubectl's short age (``45s``, ``3m20s``, ``5h``, ``2d3h``) of an RFC 3339 time."""
    if not timestamp:
        return "<unknown>"
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return human_duration((now - then).total_seconds())


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration``: precise when short, coarse when long."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 120:
        return f"{max(s, 0)}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return _two(minutes, "m", s % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return _two(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return _two(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _two(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _two(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big}{big_unit}" + (f"{small}{small_unit}" if small else "")
