"""A fake operator speaking the worker protocol over real HTTP, and helpers to run a
worker against it.  A uniquely named module (not conftest) so test files can import it.

The fake keeps the operator's side of ``docs/worker-protocol.md`` where the runtime's
rules depend on it:

* leases of its own: a claim writes one (``lease_seconds``); heartbeats that list the
  attempt renew it; one not renewed in time expires: the attempt is fenced
  ``LeaseExpired`` and its job queued again as the next attempt;
* claim request ids: a repeated id replays the assignments it got, those still current;
* heartbeat answers: ``assign`` for a lease this worker holds but did not list,
  ``abandon`` for a listed attempt that is not current, ``cancel`` (with its grace)
  for an attempt being cancelled, fenced if no report comes within interval + grace + slack;
* reports: accepted once for a current attempt, 409 when it is not current, 404
  ``unknown_attempt`` for ids never issued, 404 ``worker_not_registered`` after
  ``restart()`` until the worker registers again;
* real long polls, cancelled when the client goes away;
* faults: per request (``fault()``: a status, a reply dropped after processing, a reset
  before processing, a hang until the client gives up) and states (``go_away()``: the
  port is closed and connections are refused; ``outage()``: every request hangs or gets
  a status).  After an absence (refused, or 503) every lease is extended by its length,
  as the operator does; an outage of other kinds lets leases run out.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from wr_http import RESET, FaultyServer, Reply, Request, _Action

from worker_runtime import Worker, WorkerConfig
from worker_runtime.client import OperatorClient
from worker_runtime.protocol import (
    Assignment,
    ClaimRequest,
    Command,
    CommandType,
    HeartbeatRequest,
    JobRef,
    RegisterRequest,
)
from worker_runtime.runner import Runner
from worker_runtime.timings import Timings

#: Test timings: the protocol's waits scaled down (seconds to hundredths).
FAST = Timings(
    retry_initial_seconds=0.01,
    retry_max_seconds=0.05,
    heartbeat_timeout_min_seconds=0.25,
    heartbeat_timeout_max_seconds=1.0,
    release_grace_seconds=0.1,
    shutdown_report_seconds=2.0,
    min_claim_interval_seconds=0.02,
)
DROP = "drop"  # fault(): process the request, then reset the connection instead of answering


@dataclass
class Job:
    uid: str
    name: str
    skill: str
    params: dict[str, Any]
    deadline: datetime | None = None
    #: Attempts that may end in a retryable failure before the job fails for good.
    max_attempts: int = 1
    attempt: int = 0
    #: (attempt id, what ended it: "complete", "fail", "release", or the operator's reason)
    history: list[tuple[str, str]] = field(default_factory=list)
    done: bool = False


@dataclass
class Lease:
    assignment: Assignment
    job: Job
    worker_id: str
    expires: float
    #: The claim's answer was produced (sent or lost): a heartbeat not listing it gets assign.
    handed: bool = False
    cancel_reason: str = ""
    cancel_grace: float = 0.0
    cancel_fence_at: float | None = None


class FakeOperator:
    """Serves the worker protocol from memory; every wait in it is bounded."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.server = FaultyServer(self._handle, tls=tls)
        self.heartbeat_interval = 0.05
        self.lease_seconds = 5.0
        self.cancel_grace = 0.2
        #: Fencing a cancelled attempt waits this long beyond interval + grace for its report.
        self.fence_slack = 2.0
        self.claim_wait_cap = 5.0
        self.extra_assignments = 0  # misbehave: hand out more than max_attempts
        self.jobs: dict[str, Job] = {}
        self.queue: list[Job] = []
        self.queued = asyncio.Event()
        self.leases: dict[str, Lease] = {}
        #: Every assignment ever written, by attempt id.
        self.assignments: dict[str, Assignment] = {}
        self.registered: set[str] = set()
        self.last_claim: dict[str, tuple[str, list[str]]] = {}  # worker -> (request id, ids)
        self.faults: list[tuple[str, Any]] = []
        self.outage_answer: Any = None
        self._away_since: float | None = None
        # What happened, for assertions.
        self.registers: list[RegisterRequest] = []
        self.claims: list[ClaimRequest] = []
        #: The request id of every claim that arrived, faulted ones included.
        self.claim_ids: list[str | None] = []
        #: The attempt ids each claim in ``claims`` was answered with.
        self.claim_answers: list[list[str]] = []
        self.heartbeats: list[HeartbeatRequest] = []
        self.commands_sent: list[Command] = []
        self.progress: list[tuple[str, dict[str, Any]]] = []
        #: The accepted report of each attempt: (action, body).
        self.reports: dict[str, tuple[str, dict[str, Any]]] = {}
        #: Every report request: (attempt id, action or the fault's "HTTP <status>").
        self.report_calls: list[tuple[str, str]] = []
        #: Every report that reached the protocol logic: (attempt id, action, body, status).
        self.report_requests: list[tuple[str, str, dict[str, Any], int]] = []
        self.heartbeat_times: list[float] = []
        #: Every request that arrived, faulted ones included: (path, body).
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.auth_headers: list[str] = []
        self.on_claim: Callable[[ClaimRequest], None] = lambda request: None
        self._manual: list[Command] = []
        self._next_uid = 0

    # -- the server ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def claims_cancelled(self) -> int:
        return sum(1 for path in self.server.cancelled_by_client if path.endswith("/claim"))

    async def start(self) -> FakeOperator:
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop()

    async def go_away(self) -> None:
        """The operator process is gone: connections are refused (and open ones reset)."""
        self._away_since = time.monotonic()
        await self.server.stop()

    async def come_back(self, *, restarted: bool = True) -> None:
        """Listen again; a restarted operator has forgotten every worker and claim id."""
        await self.server.start()
        self._absence_over()
        if restarted:
            self.registered.clear()
            self.last_claim.clear()

    def outage(self, answer: Any) -> None:
        """Answer every request with ``answer`` (a status, ``HANG``, ``RESET``) until
        ``outage(None)``.  A 503 outage is an absence: leases wait for its end."""
        if answer == 503 and self.outage_answer != 503:
            self._away_since = time.monotonic()
        elif answer != 503 and self.outage_answer == 503:
            self._absence_over()
        self.outage_answer = answer

    def fault(self, path_suffix: str, answer: Any, code: str = "", times: int = 1) -> None:
        """The next ``times`` requests whose path ends with ``path_suffix`` get ``answer``:
        a status (with ``code``), a ``Reply``, ``DROP``, ``RESET`` or ``HANG``."""
        self.faults += [(path_suffix, (answer, code))] * times

    def _absence_over(self) -> None:
        if self._away_since is not None:
            away = time.monotonic() - self._away_since
            for lease in self.leases.values():
                lease.expires += away
            self._away_since = None

    # -- what tests do ------------------------------------------------------------------

    def enqueue(
        self,
        skill: str,
        params: dict[str, Any] | None = None,
        *,
        deadline: datetime | None = None,
        max_attempts: int = 1,
    ) -> str:
        """Queue a job; returns the id its first attempt will have."""
        self._next_uid += 1
        uid = f"uid-{self._next_uid}"
        job = Job(uid, f"job-{self._next_uid}", skill, params or {}, deadline, max_attempts)
        self.jobs[uid] = job
        self.queue.append(job)
        self.queued.set()
        return f"{uid}.1"

    def job_of(self, attempt_id: str) -> Job:
        return self.jobs[attempt_id.rpartition(".")[0]]

    def command(
        self,
        type_: str,
        attempt_id: str | None = None,
        reason: str = "",
        assignment: Assignment | None = None,
    ) -> None:
        """Send a command with the next heartbeat answer, whatever the fake's state."""
        command = Command(
            type=CommandType(type_), attempt_id=attempt_id, reason=reason, assignment=assignment
        )
        self._manual.append(command)

    def cancel(
        self, attempt_id: str, reason: str = "cancelled", grace: float | None = None
    ) -> None:
        """The job was cancelled: heartbeats listing the attempt get ``cancel``."""
        lease = self.leases[attempt_id]
        lease.cancel_reason = reason
        lease.cancel_grace = self.cancel_grace if grace is None else grace
        fence_in = self.heartbeat_interval + lease.cancel_grace + self.fence_slack
        lease.cancel_fence_at = time.monotonic() + fence_in

    def fence(self, attempt_id: str, how: str) -> None:
        """End the attempt on the operator's side (e.g. ``TimedOut``): its job is queued
        again if it has attempts left, and heartbeats listing it get ``abandon``."""
        self._end(attempt_id, how, retryable=True)

    def give(self, attempt_id: str, worker_id: str = "w1") -> Lease:
        """Write a claim for ``worker_id`` without it asking (as if its answer were lost)."""
        job = self.job_of(attempt_id)
        self.queue.remove(job)
        return self._lease(job, worker_id, handed=True)

    # -- leases -------------------------------------------------------------------------

    def _lease(self, job: Job, worker_id: str, *, handed: bool = False) -> Lease:
        job.attempt += 1
        attempt_id = f"{job.uid}.{job.attempt}"
        assignment = Assignment(
            attempt_id=attempt_id,
            job=JobRef(namespace="ns", name=job.name, uid=job.uid),
            attempt=job.attempt,
            skill=job.skill,
            params=job.params,
            deadline=job.deadline,
            lease_seconds=self.lease_seconds,
        )
        lease = Lease(assignment, job, worker_id, time.monotonic() + self.lease_seconds, handed)
        self.leases[attempt_id] = lease
        self.assignments[attempt_id] = assignment
        return lease

    def _end(self, attempt_id: str, how: str, retryable: bool = False) -> None:
        lease = self.leases.pop(attempt_id)
        job = lease.job
        job.history.append((attempt_id, how))
        counted = sum(1 for _, h in job.history if h != "release")
        if how == "release" or (
            (how == "LeaseExpired" or retryable) and counted < job.max_attempts
        ):
            self.queue.append(job)  # again, as its next attempt
            self.queued.set()
        else:
            job.done = True

    def tick(self) -> None:
        """Expire leases and fence cancelled attempts that are due (never while away)."""
        if self._away_since is not None:
            return
        now = time.monotonic()
        for attempt_id, lease in list(self.leases.items()):
            if lease.cancel_fence_at is not None and now > lease.cancel_fence_at:
                self._end(attempt_id, "Cancelled")
            elif now > lease.expires:
                self._end(attempt_id, "LeaseExpired")

    # -- the protocol ---------------------------------------------------------------------

    async def _handle(self, request: Request) -> Reply | _Action:
        path = request.path
        self.auth_headers.append(request.headers.get("authorization", ""))
        self.requests.append((path, request.json()))
        if path.endswith("/claim"):
            self.claim_ids.append(request.json().get("request_id"))
        if self.outage_answer is not None:
            return _answer(self.outage_answer, "")
        drop = False
        for i, (suffix, (answer, code)) in enumerate(self.faults):
            if path.endswith(suffix):
                del self.faults[i]
                if answer == DROP:
                    drop = True
                    break
                if path.endswith(("/complete", "/fail", "/release")):
                    status = answer.status if isinstance(answer, Reply) else answer
                    self.report_calls.append((path.split("/")[3], f"HTTP {status}"))
                return _answer(answer, code)
        self.tick()
        reply = await self._serve(path, request.json())
        return RESET if drop else reply

    async def _serve(self, path: str, body: dict[str, Any]) -> Reply:
        if path == "/v1/workers/register":
            register = RegisterRequest.model_validate(body)
            self.registers.append(register)
            self.registered.add(register.worker_id)
            return Reply(
                200,
                {
                    "worker_id": register.worker_id,
                    "heartbeat_interval_seconds": self.heartbeat_interval,
                    "lease_seconds": self.lease_seconds,
                    "cancel_grace_seconds": self.cancel_grace,
                },
            )
        parts = path.split("/")
        if parts[2] == "workers":
            worker_id = parts[3]
            if worker_id not in self.registered:
                return _error(404, "worker_not_registered", f"worker {worker_id} is not registered")
            if parts[4] == "claim":
                return await self._claim(worker_id, ClaimRequest.model_validate(body))
            return self._heartbeat(worker_id, HeartbeatRequest.model_validate(body))
        attempt_id, action = parts[3], parts[4]
        if attempt_id not in self.assignments:
            return _error(404, "unknown_attempt", f"no attempt {attempt_id}")
        lease = self.leases.get(attempt_id)
        if lease is not None and lease.worker_id not in self.registered:
            return _error(404, "worker_not_registered", "register again")
        if lease is None:
            if action != "progress":
                self.report_calls.append((attempt_id, "HTTP 409"))
                self.report_requests.append((attempt_id, action, body, 409))
            return _error(409, "attempt_not_current", f"attempt {attempt_id} is not current")
        if action == "progress":
            self.progress.append((attempt_id, body))
            return Reply(200, {"ok": True})
        self.report_calls.append((attempt_id, action))
        self.report_requests.append((attempt_id, action, body, 200))
        self.reports[attempt_id] = (action, body)
        self._end(attempt_id, action, retryable=action == "fail" and body.get("retryable", True))
        return Reply(200, {"ok": True})

    async def _claim(self, worker_id: str, request: ClaimRequest) -> Reply:
        self.claims.append(request)
        self.on_claim(request)
        last_id, given = self.last_claim.get(worker_id, ("", []))
        if request.request_id and request.request_id == last_id:
            replay = [self.leases[i].assignment for i in given if i in self.leases]
            self.claim_answers.append([a.attempt_id for a in replay])
            return Reply(200, {"assignments": [a.model_dump(mode="json") for a in replay]})
        deadline = time.monotonic() + min(request.wait_seconds, self.claim_wait_cap)
        while not self.queue and time.monotonic() < deadline:
            self.queued.clear()
            try:
                await asyncio.wait_for(self.queued.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        n = request.max_attempts + self.extra_assignments
        taken, self.queue = self.queue[:n], self.queue[n:]
        leases = [self._lease(job, worker_id) for job in taken]
        if request.request_id:
            self.last_claim[worker_id] = (
                request.request_id,
                [x.assignment.attempt_id for x in leases],
            )
        for lease in leases:
            lease.handed = True
        self.claim_answers.append([x.assignment.attempt_id for x in leases])
        return Reply(200, {"assignments": [x.assignment.model_dump(mode="json") for x in leases]})

    def _heartbeat(self, worker_id: str, request: HeartbeatRequest) -> Reply:
        self.heartbeats.append(request)
        now = time.monotonic()
        self.heartbeat_times.append(now)
        commands: list[Command] = []
        for attempt_id in request.attempt_ids:
            lease = self.leases.get(attempt_id)
            if lease is None or lease.worker_id != worker_id:
                commands.append(
                    Command(type=CommandType.abandon, attempt_id=attempt_id, reason="not current")
                )
                continue
            lease.expires = now + self.lease_seconds
            if lease.cancel_reason:
                commands.append(
                    Command(
                        type=CommandType.cancel,
                        attempt_id=attempt_id,
                        reason=lease.cancel_reason,
                        grace_seconds=lease.cancel_grace,
                    )
                )
        listed = set(request.attempt_ids)
        for attempt_id, lease in self.leases.items():
            if lease.worker_id == worker_id and lease.handed and attempt_id not in listed:
                commands.append(Command(type=CommandType.assign, assignment=lease.assignment))
        commands += self._manual
        self._manual = []
        self.commands_sent += commands
        return Reply(
            200, {"commands": [c.model_dump(mode="json", exclude_none=True) for c in commands]}
        )


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}})


def _answer(answer: Any, code: str) -> Reply | _Action:
    if isinstance(answer, (Reply, _Action)):
        return answer
    if answer == DROP:
        return RESET
    headers = {"Retry-After": "0"} if answer == 429 else {}
    reply = _error(
        answer, code or ("attempt_not_current" if answer == 409 else "fault"), f"injected {answer}"
    )
    reply.headers.update(headers)
    return reply


# -- running a worker against it ---------------------------------------------------------


def make_config(**overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {
        "operator_url": "http://127.0.0.1:1",
        "pool": "pool",
        "worker_id": "w1",
        "health_port": 0,
        "claim_wait_seconds": 1,
        "drain_timeout_seconds": 2,
    }
    values.update(overrides)
    return WorkerConfig(**values)


def make_client(url: str, **kwargs: Any) -> OperatorClient:
    return OperatorClient(url, lambda: "test-token", **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_until(condition: Callable[[], object], timeout: float = 3.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        await asyncio.sleep(0.01)


class Harness:
    """A runner of ``worker`` against ``operator``, started as a task."""

    def __init__(
        self,
        worker: Worker,
        operator: FakeOperator,
        *,
        config: dict[str, Any] | None = None,
        timings: Timings = FAST,
        client: OperatorClient | None = None,
    ) -> None:
        self.operator = operator
        self.client = client or make_client(operator.url)
        self.config = make_config(operator_url=operator.url, **(config or {}))
        self.runner = Runner(worker, self.config, self.client, timings=timings)
        self.task: asyncio.Task[None] | None = None

    async def start(self, wait_registered: bool = True) -> Harness:
        self.task = asyncio.create_task(self.runner.run())
        if wait_registered:
            await wait_until(
                lambda: self.runner.registered or (self.task is not None and self.task.done()),
                what="registration",
            )
        return self

    async def report(self, attempt_id: str, timeout: float = 3.0) -> tuple[str, dict[str, Any]]:
        await wait_until(lambda: attempt_id in self.operator.reports, timeout, attempt_id)
        return self.operator.reports[attempt_id]

    async def stop(self, timeout: float = 5.0) -> None:
        assert self.task is not None
        self.runner.drain("test over")
        await asyncio.wait_for(self.task, timeout)
