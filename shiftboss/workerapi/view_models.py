"""The read endpoints' wire models (``/v1/queue``, ``/v1/pools/.../workers``): a waiting
job's place in its pool's queue and why it waits, and a pool's registered workers.
Served by ``shiftboss.workerapi.views``, read by ``kubectl shiftboss get`` and
``kubectl shiftboss workers``, documented in ``docs/worker-api.openapi.json``."""

from __future__ import annotations

from pydantic import Field

from shiftboss.api.common import ApiModel

#: A Kubernetes UID: a UUID in its canonical (lower-case) text form.
UID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: A pool's workers listed at most (the registry admits 512 per pool by default).
MAX_WORKERS_LISTED = 512


class QueueAhead(ApiModel):
    """The jobs of the pool's queue served before this one, by why they are."""

    higher_priority: int = Field(description="Jobs of a higher priority.")
    same_priority: int = Field(description="Jobs of the same priority that came first.")
    lower_priority: int = Field(
        description="Jobs of a lower priority that waited long enough to age past it "
        "(docs/scheduling.md)."
    )


class QueueView(ApiModel):
    """Where a Job is in its pool's queue, computed when asked (never written to the Job)."""

    namespace: str
    name: str
    uid: str
    pool: str
    skill: str
    priority: int
    phase: str = Field(description="The phase the operator holds (Pending before any write).")
    position: int | None = Field(
        None,
        description="1 = the next job of the pool's queue; null when the job is not queued "
        "(running, retrying later, finished). The order of a worker offering every skill "
        "queued: a worker offering fewer skills may take a later job first.",
    )
    queued: int = Field(description="Jobs queued in the pool (all skills).")
    ahead: QueueAhead | None = Field(None, description="Set when position is.")
    reason: str | None = Field(
        None, description="Why the job waits, in words; null when it does not wait."
    )
    wait_reason: str | None = Field(
        None,
        description="When something other than its turn holds the job, the reason of its "
        "Schedulable=False condition: PoolNotFound, PoolPaused, NoReadyWorker, "
        "NoWorkerWithSkill or PoolDegraded.",
    )
    offered_by: int = Field(description="Registered workers of the pool offering the skill.")


class WorkerView(ApiModel):
    """One registered worker of a pool."""

    id: str = Field(description="The worker id (a pod's worker id is its pod's name).")
    pod: str | None = Field(
        None, description="The worker's pod; null for a worker outside the cluster."
    )
    skills: list[str]
    slots: int = Field(description="Attempts it runs at once (its registered capacity).")
    busy: int = Field(description="Attempts it holds a lease for now.")
    draining: bool
    last_seen_seconds: float = Field(
        description="Seconds since its last request (claim or heartbeat)."
    )
    version: str = ""
    runtime: str = ""


class PoolWorkersView(ApiModel):
    """A pool's registered workers, by id."""

    namespace: str
    pool: str
    uid: str
    registered: int = Field(description="Workers registered (may exceed those listed).")
    slots: int = Field(description="Slots of all registered workers.")
    busy: int = Field(description="Busy slots of all registered workers.")
    workers: list[WorkerView] = Field(
        description=f"At most {MAX_WORKERS_LISTED}, by id; truncated says when more are."
    )
    truncated: bool = False
