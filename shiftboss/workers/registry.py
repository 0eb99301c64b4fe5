"""Registered workers, kept in memory: workers register again when the operator restarts.

A worker id belongs to the identity that registered it (``WorkerIdentity.owner``) until
the worker is forgotten: another identity's registration of the same id is refused,
except a pod registering its own name, which always wins (a pod's name is its own).
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from shiftboss.jobs.params import canonical_schema
from shiftboss.workers.limits import RegistrationLimits, check_identity_room, check_pool_room
from worker_runtime.protocol import RegisterRequest, SkillSpec

#: Owners of pod-bound identities start with this (see ``WorkerIdentity.owner``).
POD_OWNER_PREFIX = "pod:"
#: Distinct skills (name and schema) kept as one shared copy each: the workers of a pool
#: register the same skills, so a pool of 500 costs one copy of its schemas, not 500.
MAX_SHARED_SKILLS = 4096


@dataclass(frozen=True)
class RegisteredSkill:
    """What the operator keeps of a skill: its name and input schema, as compact JSON
    (a parsed schema weighs ten times its text; the output schema is of no use here)."""

    name: str
    #: ``canonical_schema`` of the input schema; "" when the skill takes anything.
    input_schema: str = ""

    @classmethod
    def of(cls, skill: SkillSpec) -> RegisteredSkill:
        schema = canonical_schema(skill.input_schema) if skill.input_schema else ""
        return cls(skill.name, schema)


class WorkerIdTaken(Exception):
    """409: the worker id is registered by another identity."""


@dataclass
class WorkerInfo:
    namespace: str
    pool: str
    worker_id: str
    skills: dict[str, RegisteredSkill]
    capacity: int
    owner: str = ""
    version: str = ""
    runtime: str = ""
    last_seen: float = field(default_factory=time.monotonic)
    draining: bool = False
    #: The request id of the worker's last answered claim and the attempts it got, so
    #: that a retry of that claim (its answer lost) gets the same ones again.
    last_claim: tuple[str, list[str]] | None = None
    #: Bumped by every claim: a newer claim of the same worker supersedes an older one.
    claim_seq: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.worker_id)

    @property
    def pool_key(self) -> tuple[str, str]:
        return (self.namespace, self.pool)


class WorkerRegistry:
    def __init__(
        self,
        *,
        forget_after_seconds: float,
        limits: RegistrationLimits | None = None,
        warmup_seconds: float = 0.0,
    ) -> None:
        self.forget_after_seconds = forget_after_seconds
        self.limits = limits or RegistrationLimits()
        self._skills: OrderedDict[RegisteredSkill, RegisteredSkill] = OrderedDict()
        self._workers: dict[tuple[str, str], WorkerInfo] = {}
        #: How many registered workers offer each (namespace, pool, skill).
        self._offering: Counter[tuple[str, str, str]] = Counter()
        #: Until then, workers of running pools may still be re-registering (a restart).
        self._warm_at = time.monotonic() + warmup_seconds

    def may_run(self, namespace: str, pool: str, skill: str) -> bool:
        """Whether a registered worker of the pool offers the skill (or, just after the
        operator started, may still register to offer it)."""
        return self._offering[(namespace, pool, skill)] > 0 or time.monotonic() < self._warm_at

    def offering(self, namespace: str, pool: str, skill: str) -> int:
        """How many registered workers of the pool offer the skill."""
        return self._offering.get((namespace, pool, skill), 0)

    def in_pool(self, namespace: str, pool: str) -> list[WorkerInfo]:
        """The pool's registered workers, by id (a read: nobody's ``last_seen`` moves)."""
        key = (namespace, pool)
        return sorted(
            (w for w in self._workers.values() if w.pool_key == key), key=lambda w: w.worker_id
        )

    def _index(self, worker: WorkerInfo, change: int) -> None:
        for skill in worker.skills:
            key = (worker.namespace, worker.pool, skill)
            self._offering[key] += change
            if self._offering[key] <= 0:
                del self._offering[key]

    def register(self, namespace: str, request: RegisterRequest, owner: str) -> WorkerInfo:
        """Add or replace the worker; ``WorkerIdTaken`` / ``LimitExceeded`` refuse it."""
        key = (namespace, request.worker_id)
        existing = self._workers.get(key)
        if (
            existing is not None
            and existing.owner != owner
            and not owner.startswith(POD_OWNER_PREFIX)
        ):
            raise WorkerIdTaken(
                f"worker id {request.worker_id!r} is registered by another identity; give "
                "this worker its own id (SHIFTBOSS_WORKER_ID)"
            )
        if existing is None or existing.pool != request.pool:
            pool = (namespace, request.pool)
            in_pool = sum(1 for w in self._workers.values() if w.pool_key == pool)
            check_pool_room(request.pool, in_pool, self.limits)
        if existing is None and not owner.startswith(POD_OWNER_PREFIX):
            held = sum(1 for w in self._workers.values() if w.owner == owner)
            check_identity_room(owner.removeprefix("sa:"), held, self.limits)
        info = WorkerInfo(
            namespace=namespace,
            pool=request.pool,
            worker_id=request.worker_id,
            skills={s.name: self._shared(s) for s in request.skills},
            capacity=request.capacity,
            owner=owner,
            version=request.version,
            runtime=request.runtime,
        )
        if existing is not None and existing.owner == owner:
            info.last_claim, info.claim_seq = existing.last_claim, existing.claim_seq
        if existing is not None:
            self._index(existing, -1)
        self._workers[key] = info
        self._index(info, +1)
        return info

    def _shared(self, spec: SkillSpec) -> RegisteredSkill:
        skill = RegisteredSkill.of(spec)
        shared = self._skills.get(skill)
        if shared is None:
            self._skills[skill] = shared = skill
            if len(self._skills) > MAX_SHARED_SKILLS:
                self._skills.popitem(last=False)  # still held by its workers, just not shared
        else:
            self._skills.move_to_end(skill)
        return shared

    def get(self, namespace: str, worker_id: str) -> WorkerInfo | None:
        info = self._workers.get((namespace, worker_id))
        if info:
            info.last_seen = time.monotonic()
        return info

    def __iter__(self) -> Iterator[WorkerInfo]:
        return iter(list(self._workers.values()))

    def remove(self, namespace: str, worker_id: str) -> None:
        worker = self._workers.pop((namespace, worker_id), None)
        if worker is not None:
            self._index(worker, -1)

    def forget_silent(self) -> list[WorkerInfo]:
        """Drop workers that stopped heartbeating long ago; returns them."""
        cutoff = time.monotonic() - self.forget_after_seconds
        gone = [w for w in self._workers.values() if w.last_seen < cutoff]
        for worker in gone:
            del self._workers[worker.key]
            self._index(worker, -1)
        return gone
