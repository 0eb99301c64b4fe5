"""In-memory fakes for testing the Dispatcher: a JobStore, an EventRecorder and a clock.

``FakeJobStore`` keeps Jobs as the API server returns them (plain dicts with apiVersion,
kind, metadata, spec, status) and behaves like ``shiftboss.jobs.store.JobStore``:

* ``write_status`` enforces the resourceVersion precondition (``StaleJob`` when the
  caller's version is not the stored one), raises ``JobGone`` for a deleted Job, applies
  the status as a JSON merge patch (``None`` removes a field), bumps the resourceVersion
  and counts the write in ``status_writes``;
* every store call yields to the event loop once, as a real request would, so that
  concurrent coroutines really interleave;
* a test plays "another writer" with ``modify`` (changes the stored Job and bumps its
  version without telling the dispatcher), and injects API failures with
  ``write_errors`` / ``delete_errors`` (raised, in order, by the next calls).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from shiftboss.api.common import API_GROUP_VERSION, format_timestamp
from shiftboss.api.job import JobStatus
from shiftboss.jobs.store import JobGone, StaleJob
from shiftboss.jobs.tracked import TrackedJob

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NAMESPACE = "ns"
POOL = "pool"


def at(seconds: float) -> datetime:
    """``T0`` plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch, as the API server applies a status patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def job_object(
    name: str,
    *,
    namespace: str = NAMESPACE,
    uid: str | None = None,
    created: datetime = T0,
    pool: str = POOL,
    skill: str = "echo",
    params: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    resource_version: str = "1",
    **spec: Any,
) -> dict[str, Any]:
    """A Job as the API server returns it; extra keyword arguments are spec fields
    (camelCase, e.g. ``priority=9``, ``ttlSecondsAfterFinished=30``)."""
    obj: dict[str, Any] = {
        "apiVersion": API_GROUP_VERSION,
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{name}",
            "resourceVersion": resource_version,
            "creationTimestamp": format_timestamp(created),
            "generation": 1,
        },
        "spec": {"pool": pool, "skill": skill, "params": params or {}, **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


class FakeJobStore:
    """Same interface as ``JobStore``: write_status, read, list, delete, status_writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.status_writes = 0
        #: Every successful status write: (job name, the status as written).
        self.writes: list[tuple[str, dict[str, Any]]] = []
        #: Names of the Jobs deleted through ``delete``, in order.
        self.deleted: list[str] = []
        self.delete_calls = 0
        self.reads = 0
        self.conflicts = 0
        #: What the next ``write_status`` / ``delete`` calls raise, in order (None: succeed).
        self.write_errors: list[BaseException | None] = []
        self.delete_errors: list[BaseException | None] = []
        self._versions = itertools.count(100)

    # -- what tests use -----------------------------------------------------------------

    def _bump(self, obj: dict[str, Any]) -> None:
        obj["metadata"]["resourceVersion"] = str(next(self._versions))

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the Job (as ``kubectl create`` would); returns it as the watch shows it."""
        stored = copy.deepcopy(obj)
        self._bump(stored)
        key = (stored["metadata"]["namespace"], stored["metadata"]["name"])
        self.objects[key] = stored
        return copy.deepcopy(stored)

    def create(self, name: str, **kwargs: Any) -> dict[str, Any]:
        return self.add(job_object(name, **kwargs))

    def get(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(namespace, name)])

    def status(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(namespace, name)].get("status") or {})

    def phase(self, name: str, namespace: str = NAMESPACE) -> str | None:
        return self.status(name, namespace).get("phase")

    def modify(
        self, name: str, change: Callable[[dict[str, Any]], None], namespace: str = NAMESPACE
    ) -> dict[str, Any]:
        """Another writer changes the Job behind the dispatcher's back (new resourceVersion)."""
        obj = self.objects[(namespace, name)]
        change(obj)
        self._bump(obj)
        return copy.deepcopy(obj)

    def remove(self, name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        """Someone deletes the Job; returns the last state (as a DELETED watch event has it)."""
        return self.objects.pop((namespace, name))

    def phases_written(self, name: str | None = None) -> list[str | None]:
        return [s.get("phase") for n, s in self.writes if name is None or n == name]

    # -- the JobStore interface ---------------------------------------------------------

    async def write_status(self, job: TrackedJob, status: JobStatus) -> TrackedJob:
        await asyncio.sleep(0)
        if self.write_errors and (error := self.write_errors.pop(0)) is not None:
            raise error
        obj = self.objects.get((job.namespace, job.name))
        if obj is None or obj["metadata"]["uid"] != job.uid:
            raise JobGone(f"jobs {job.name!r} not found")
        if obj["metadata"]["resourceVersion"] != job.resource_version:
            self.conflicts += 1
            raise StaleJob(
                f"the object has been modified: version {job.resource_version} is not "
                f"{obj['metadata']['resourceVersion']}"
            )
        patch = status.model_dump(by_alias=True, mode="json")
        obj["status"] = merge_patch(obj.get("status"), patch)
        self._bump(obj)
        self.status_writes += 1
        self.writes.append((job.name, copy.deepcopy(obj["status"])))
        return TrackedJob.from_object(copy.deepcopy(obj))

    async def read(self, namespace: str, name: str) -> TrackedJob:
        await asyncio.sleep(0)
        self.reads += 1
        obj = self.objects.get((namespace, name))
        if obj is None:
            raise JobGone(f"jobs {name!r} not found")
        return TrackedJob.from_object(copy.deepcopy(obj))

    async def list(self, namespace: str | None = None) -> list[TrackedJob]:
        await asyncio.sleep(0)
        return [
            TrackedJob.from_object(copy.deepcopy(obj))
            for (ns, _), obj in sorted(self.objects.items())
            if namespace is None or ns == namespace
        ]

    async def delete(self, job: TrackedJob) -> None:
        await asyncio.sleep(0)
        self.delete_calls += 1
        if self.delete_errors and (error := self.delete_errors.pop(0)) is not None:
            raise error
        obj = self.objects.get((job.namespace, job.name))
        if obj is None or obj["metadata"]["uid"] != job.uid:
            return  # the real store ignores 404 and a failed uid precondition (409)
        del self.objects[(job.namespace, job.name)]
        self.deleted.append(job.name)


class FakeEvents:
    """Records what ``EventRecorder.record`` was called with."""

    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = []

    def record(self, **kwargs: Any) -> None:
        self.recorded.append(kwargs)

    def reasons(self, name: str | None = None) -> list[str]:
        return [e["reason"] for e in self.recorded if name is None or e["name"] == name]


class FakeClock:
    """A wall clock (the dispatcher's ``clock=``) that moves only when told."""

    def __init__(self, now: datetime = T0 + timedelta(minutes=1)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now
