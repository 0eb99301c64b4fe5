"""Leases of running attempts, indexed by attempt, by job, by worker and by pool.

A lease is renewed by its worker's heartbeats and expires ``lease_seconds`` after the
last one (monotonic time).  An attempt that must stop (cancelled, timed out) carries
a ``StopOrder``: its worker is told to stop, and the attempt is fenced at ``fence_at``
if it has not reported by then.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from shiftboss.jobs.machine import StopReason

WorkerKey = tuple[str, str]  # (namespace, worker id)
PoolKey = tuple[str, str]  # (namespace, pool)


@dataclass
class StopOrder:
    reason: StopReason
    #: When the attempt is fenced if its worker has not reported (monotonic).
    fence_at: float


@dataclass
class Lease:
    key: str  # the attempt id
    uid: str
    attempt: int
    namespace: str
    pool: str
    worker_id: str
    #: When the lease runs out without a heartbeat (monotonic).
    expires: float
    #: When the attempt must be over (timeout or the job's deadline), if ever.
    deadline: datetime | None
    #: When it was granted or restored (monotonic): decides when a heartbeat that does
    #: not list it gets an ``assign``.
    granted: float
    #: Restored from the Job's status (a restart, a hand-over) and not yet heard of from
    #: its worker: the claim answer that carried it may have been lost with the operator
    #: that wrote it, so the worker's next claim gets it first (``Claims.claim``).
    unconfirmed: bool = False
    stop: StopOrder | None = None
    #: Set when the worker's pod is being deleted: a lease lost now is a disruption.
    disrupted: str | None = None

    @property
    def worker_key(self) -> WorkerKey:
        return (self.namespace, self.worker_id)

    @property
    def pool_key(self) -> PoolKey:
        return (self.namespace, self.pool)

    def belongs_to(self, worker: WorkerKey, pool: PoolKey) -> bool:
        """Whether the worker ``worker``, registered for ``pool``, holds this lease: its id
        alone is not enough (after a restart another pool's worker may take the id)."""
        return self.worker_key == worker and self.pool_key == pool


class LeaseTable:
    def __init__(self) -> None:
        self._leases: dict[str, Lease] = {}
        self._by_job: dict[str, str] = {}
        self._by_worker: dict[WorkerKey, set[str]] = {}
        self._by_pool: dict[PoolKey, set[str]] = {}

    def add(self, lease: Lease) -> None:
        previous = self._by_job.get(lease.uid)
        if previous is not None and previous != lease.key:
            self.pop(previous)  # one running attempt per job
        self._leases[lease.key] = lease
        self._by_job[lease.uid] = lease.key
        self._by_worker.setdefault(lease.worker_key, set()).add(lease.key)
        self._by_pool.setdefault(lease.pool_key, set()).add(lease.key)

    def pop(self, key: str) -> Lease | None:
        lease = self._leases.pop(key, None)
        if lease is None:
            return None
        if self._by_job.get(lease.uid) == key:
            del self._by_job[lease.uid]
        _discard(self._by_worker, lease.worker_key, key)
        _discard(self._by_pool, lease.pool_key, key)
        return lease

    def get(self, key: str) -> Lease | None:
        return self._leases.get(key)

    def for_job(self, uid: str) -> Lease | None:
        key = self._by_job.get(uid)
        return self._leases.get(key) if key is not None else None

    def held_by(self, worker: WorkerKey) -> list[Lease]:
        return [self._leases[key] for key in self._by_worker.get(worker, ())]

    def count_in_pool(self, pool: PoolKey) -> int:
        return len(self._by_pool.get(pool, ()))

    def workers_in(self, namespace: str) -> set[str]:
        """Ids of the workers of ``namespace`` that hold a lease."""
        return {worker for ns, worker in self._by_worker if ns == namespace}

    def extend_all(self, seconds: float) -> None:
        """The operator could not hear heartbeats for ``seconds``: nobody is to blame."""
        for lease in self._leases.values():
            lease.expires += seconds
            if lease.stop is not None:
                lease.stop.fence_at += seconds

    def __getitem__(self, key: str) -> Lease:
        return self._leases[key]

    def __contains__(self, key: object) -> bool:
        return key in self._leases

    def __iter__(self) -> Iterator[Lease]:
        return iter(list(self._leases.values()))

    def __len__(self) -> int:
        return len(self._leases)


def _discard(index: dict[tuple[str, str], set[str]], at: tuple[str, str], key: str) -> None:
    keys = index.get(at)
    if keys is not None:
        keys.discard(key)
        if not keys:
            del index[at]
