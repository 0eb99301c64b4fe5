"""Registered workers, kept in memory: workers re-register when the operator restarts."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from worker_runtime.protocol import RegisterRequest, SkillSpec


@dataclass
class WorkerInfo:
    namespace: str
    pool: str
    worker_id: str
    skills: dict[str, SkillSpec]
    capacity: int
    version: str = ""
    runtime: str = ""
    last_seen: float = field(default_factory=time.monotonic)
    draining: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.worker_id)

    @property
    def pool_key(self) -> tuple[str, str]:
        return (self.namespace, self.pool)


class WorkerRegistry:
    def __init__(self, *, forget_after_seconds: float) -> None:
        self.forget_after_seconds = forget_after_seconds
        self._workers: dict[tuple[str, str], WorkerInfo] = {}

    def register(self, namespace: str, request: RegisterRequest) -> WorkerInfo:
        info = WorkerInfo(
            namespace=namespace,
            pool=request.pool,
            worker_id=request.worker_id,
            skills={s.name: s for s in request.skills},
            capacity=request.capacity,
            version=request.version,
            runtime=request.runtime,
        )
        self._workers[info.key] = info
        return info

    def get(self, namespace: str, worker_id: str) -> WorkerInfo | None:
        info = self._workers.get((namespace, worker_id))
        if info:
            info.last_seen = time.monotonic()
        return info

    def remove(self, namespace: str, worker_id: str) -> None:
        self._workers.pop((namespace, worker_id), None)

    def in_pool(self, namespace: str, pool: str) -> list[WorkerInfo]:
        return [w for w in self._workers.values() if w.pool_key == (namespace, pool)]

    def skill(self, namespace: str, pool: str, name: str) -> SkillSpec | None:
        """The skill as registered by the most recent worker of the pool that offers it."""
        for worker in sorted(self.in_pool(namespace, pool), key=lambda w: -w.last_seen):
            if name in worker.skills:
                return worker.skills[name]
        return None

    def forget_silent(self) -> list[WorkerInfo]:
        """Drop workers that stopped heartbeating long ago; returns them."""
        cutoff = time.monotonic() - self.forget_after_seconds
        gone = [w for w in self._workers.values() if w.last_seen < cutoff]
        for worker in gone:
            del self._workers[worker.key]
        return gone
