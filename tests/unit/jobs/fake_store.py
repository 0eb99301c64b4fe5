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
  version without telling the dispatcher), and deletes a Job and creates another under
  the same name with ``recreate`` (a new uid: a write for the old one then fails with
  ``StaleJob``, as the API server answers 409 to its stale resourceVersion, and a
  re-read finds the new uid; a delete for the old uid deletes nothing);
* it fails the way the real store fails, by a small explicit API, each fault for the
  next call (or ``times`` calls) of one operation (``"write"``, ``"read"``,
  ``"delete"``), optionally only for the Job ``name``:

  - ``fail_next(op, status=503)``: the API server answered ``status``; raised as the
    real ``JobStore`` raises it (409 ``StaleJob``, 404 ``JobGone`` on a write or read,
    otherwise ``ApiError`` with the status and its Kubernetes reason: 422 Invalid,
    429 TooManyRequests, 500 InternalError, 503 ServiceUnavailable...);
    ``fail_next(op, error=httpx.ConnectError("..."))`` raises any exception instead;
  - ``time_out_next(op, after=0.0)``: no answer (``httpx.ReadTimeout`` after ``after``
    seconds); nothing happened;
  - ``lose_reply_next(op)``: the call takes effect (the write lands, the Job is
    deleted), then the reply is lost (``httpx.ReadTimeout``, or ``error=``);
  - ``unfired_faults()`` lists the faults not yet used, so a test can check that the
    fault it set up really happened.

  The older ``write_errors`` / ``delete_errors`` lists (raised, in order, by the next
  calls, before any of the above) still work.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx

from shiftboss.api.common import API_GROUP_VERSION, format_timestamp
from shiftboss.api.job import JobStatus
from shiftboss.jobs.store import JobGone, Operation, StaleJob
from shiftboss.jobs.store import store_error as job_store_error
from shiftboss.jobs.tracked import TrackedJob
from shiftboss.kube.client import ApiError
from shiftboss.kube.flow import Priority

T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
NAMESPACE = "ns"
POOL = "pool"


OPERATIONS: tuple[Operation, ...] = ("write", "read", "delete")
T = TypeVar("T")

#: The reason the API server gives with each status (its ``Status.reason``).
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def store_error(op: Operation, status: int, name: str | None = None) -> BaseException:
    """What ``JobStore`` raises when the API server answers ``status`` to ``op``."""
    api_error = ApiError(status, REASONS.get(status, ""), f"injected: {op} {name or ''}")
    mapped = job_store_error(op, api_error)
    if mapped is None:
        raise ValueError(
            f"status={status}: JobStore.{op} treats {status} as done and raises nothing; "
            "to have the Job gone or replaced, use remove() or recreate()"
        )
    mapped.__cause__ = api_error if mapped is not api_error else None
    return mapped


def read_timeout() -> httpx.ReadTimeout:
    """What the real client raises when the API server does not answer in time."""
    return httpx.ReadTimeout("timed out waiting for the API server (injected)")


@dataclass
class Fault:
    op: Operation
    error: BaseException
    #: The call takes effect before ``error`` is raised (the reply was lost).
    lands: bool
    name: str | None
    times: int
    #: Seconds the call takes before it fails (a timeout takes its time).
    after: float = 0.0

    def __str__(self) -> str:
        what = "lost reply" if self.lands else "failure"
        target = f" of {self.name}" if self.name else ""
        return (
            f"{self.op}{target}: {what} ({type(self.error).__name__}: {self.error}) x{self.times}"
        )


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
        #: (job, phase written, the priority it was sent with), for every write tried.
        self.write_priorities: list[tuple[str, str | None, Priority]] = []
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
        self._faults: list[Fault] = []
        #: Called with the Job's name once a status write landed, before its answer returns
        #: (to let the watch deliver versions ahead of the answer, as it can).
        self.after_write: Callable[[str], None] | None = None
        self._versions = itertools.count(100)
        self._uids = itertools.count(2)

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

    def recreate(
        self, name: str, namespace: str = NAMESPACE, **job: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Someone deletes the Job and creates another under the same name, with a new uid
        (the same spec unless ``job`` gives ``job_object`` arguments). Returns the deleted
        Job (as a DELETED watch event has it) and the new one (as ADDED)."""
        old = self.remove(name, namespace)
        uid = f"{old['metadata']['uid']}-{next(self._uids)}"
        if job:
            new = job_object(name, namespace=namespace, uid=uid, **job)
        else:
            new = {key: copy.deepcopy(value) for key, value in old.items() if key != "status"}
            new["metadata"]["uid"] = uid
        return old, self.add(new)

    def phases_written(self, name: str | None = None) -> list[str | None]:
        return [s.get("phase") for n, s in self.writes if name is None or n == name]

    # -- faults -------------------------------------------------------------------------

    def fail_next(
        self,
        op: Operation,
        status: int | None = None,
        *,
        error: BaseException | None = None,
        name: str | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``op`` fail without effect: the API server answered
        ``status`` (raised as ``JobStore`` raises it), or ``error`` is raised."""
        if (status is None) == (error is None):
            raise ValueError("fail_next: give either status= (an HTTP status) or error=")
        failure = error if error is not None else store_error(op, status or 0, name)
        self._inject(Fault(op, failure, lands=False, name=name, times=times))

    def time_out_next(
        self, op: Operation, *, after: float = 0.0, name: str | None = None, times: int = 1
    ) -> None:
        """The next ``times`` calls of ``op`` get no answer: ``httpx.ReadTimeout`` after
        ``after`` seconds, and nothing happened."""
        self._inject(Fault(op, read_timeout(), lands=False, name=name, times=times, after=after))

    def lose_reply_next(
        self,
        op: Operation,
        *,
        error: BaseException | None = None,
        name: str | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``op`` take effect, then their reply is lost:
        ``error`` (default ``httpx.ReadTimeout``) is raised."""
        self._inject(Fault(op, error or read_timeout(), lands=True, name=name, times=times))

    def unfired_faults(self) -> list[str]:
        """The injected faults that have not (all) fired yet, described."""
        return [str(fault) for fault in self._faults]

    def _inject(self, fault: Fault) -> None:
        if fault.op not in OPERATIONS:
            raise ValueError(f"op={fault.op!r}: give one of {', '.join(OPERATIONS)}")
        if fault.times < 1:
            raise ValueError(f"times={fault.times}: a fault fires at least once")
        self._faults.append(fault)

    async def _call(self, op: Operation, name: str | None, effect: Callable[[], T]) -> T:
        """``effect()`` as the API server would run it under the first matching fault."""
        fault = next(
            (f for f in self._faults if f.op == op and f.name in (None, name)),
            None,
        )
        if fault is None:
            return effect()
        fault.times -= 1
        if not fault.times:
            self._faults.remove(fault)
        await asyncio.sleep(fault.after)
        if fault.lands:
            with contextlib.suppress(StaleJob, JobGone):  # its answer is lost either way
                effect()
        raise fault.error

    # -- the JobStore interface ---------------------------------------------------------

    async def write_status(
        self, job: TrackedJob, status: JobStatus, priority: Priority = Priority.NORMAL
    ) -> TrackedJob:
        await asyncio.sleep(0)
        self.write_priorities.append((job.name, status.phase, priority))
        if self.write_errors and (error := self.write_errors.pop(0)) is not None:
            raise error
        return await self._call("write", job.name, lambda: self._write_status(job, status))

    def _write_status(self, job: TrackedJob, status: JobStatus) -> TrackedJob:
        obj = self.objects.get((job.namespace, job.name))
        if obj is None:
            raise JobGone(f"jobs {job.name!r} not found")
        # A Job created again under the same name has another uid and, necessarily, another
        # resourceVersion: the API server answers 409 to the stale version.
        current = (obj["metadata"]["uid"], obj["metadata"]["resourceVersion"])
        if current != (job.uid, job.resource_version):
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
        answer = TrackedJob.from_object(copy.deepcopy(obj))
        if self.after_write is not None:
            self.after_write(job.name)
        return answer

    async def read(self, namespace: str, name: str) -> TrackedJob:
        await asyncio.sleep(0)
        self.reads += 1
        return await self._call("read", name, lambda: self._read(namespace, name))

    def _read(self, namespace: str, name: str) -> TrackedJob:
        obj = self.objects.get((namespace, name))
        if obj is None:
            raise JobGone(f"jobs {name!r} not found")
        return TrackedJob.from_object(copy.deepcopy(obj))

    def listed(self, namespace: str | None = None) -> list[TrackedJob]:
        """Every Job as a list at an operator's start would return it."""
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
        await self._call("delete", job.name, lambda: self._delete(job))

    def _delete(self, job: TrackedJob) -> None:
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
