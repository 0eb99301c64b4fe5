"""A probe worker: the worker protocol spoken by the bench itself, with an external
service-account token, to time what one worker sees: the first claim answered after an
operator restart (polled every ``POLL_SECONDS``, not at a real worker's backoff), and
the claim round trip with a deep queue."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import TracebackType

import httpx

from shiftboss.bench.cluster import BenchCluster
from worker_runtime.protocol import (
    Assignment,
    ClaimRequest,
    ClaimResponse,
    CompleteReport,
    RegisterRequest,
    SkillSpec,
)

POLL_SECONDS = 0.05
#: The demo worker's ``add`` skill, as the probe offers it.
ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}


def external_token(world: BenchCluster, namespace: str) -> str:
    """A token of ``namespace``'s default service account, audience ``shiftboss``."""
    args = ("-n", namespace, "create", "token", "default", "--audience", "shiftboss")
    return world.cluster.kubectl(*args, "--duration", "2h").stdout.strip()


class ProbeWorker:
    """One worker with one slot in ``pool``; ``async with`` closes its HTTP client."""

    def __init__(self, url: str, token: str, pool: str, worker_id: str = "bench-probe") -> None:
        self.pool, self.worker_id = pool, worker_id
        self._http = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(70.0, connect=2.0),
            trust_env=False,
        )

    async def __aenter__(self) -> ProbeWorker:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def register(self) -> None:
        body = RegisterRequest(
            pool=self.pool,
            worker_id=self.worker_id,
            skills=[SkillSpec(name="add", input_schema=ADD_SCHEMA)],
            capacity=1,
            version="bench",
            runtime="bench",
        )
        response = await self._http.post("/v1/workers/register", json=body.model_dump(mode="json"))
        response.raise_for_status()

    async def claim(self, wait_seconds: float) -> list[Assignment]:
        body = ClaimRequest(max_attempts=1, wait_seconds=wait_seconds, request_id=uuid.uuid4().hex)
        response = await self._http.post(
            f"/v1/workers/{self.worker_id}/claim", json=body.model_dump(mode="json")
        )
        response.raise_for_status()
        return ClaimResponse.model_validate_json(response.content).assignments

    async def complete(self, assignment: Assignment) -> None:
        params = assignment.params
        report = CompleteReport(result=int(params.get("a", 0)) + int(params.get("b", 0)))
        response = await self._http.post(
            f"/v1/attempts/{assignment.attempt_id}/complete", json=report.model_dump(mode="json")
        )
        response.raise_for_status()

    async def first_claim(self, timeout: float, stop: asyncio.Event) -> float | None:
        """Register and claim until a job is handed over (e.g. while the operator is
        starting); completes it and returns when it was answered (monotonic s). None
        when ``stop`` was set first (checked between claims, which wait at most 1 s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not stop.is_set():
            try:
                await self.register()
                assignments = await self.claim(wait_seconds=1.0)
            except httpx.HTTPError:
                await asyncio.sleep(POLL_SECONDS)  # not up yet, or not yet serving the pool
                continue
            if assignments:
                answered = time.monotonic()
                for assignment in assignments:
                    await self.complete(assignment)
                return answered
        if stop.is_set():
            return None
        raise TimeoutError(f"the probe worker got no job within {timeout:.0f}s")

    async def claim_round_trips(self, count: int) -> list[float]:
        """``count`` claims of one job each from a non-empty queue: the seconds each
        answer took (it includes the claim's status write); every job is completed."""
        times: list[float] = []
        for _ in range(count):
            started = time.monotonic()
            assignments = await self.claim(wait_seconds=0)
            times.append(time.monotonic() - started)
            if not assignments:
                raise RuntimeError("the probe worker's claim came back empty: the queue ran dry")
            for assignment in assignments:
                await self.complete(assignment)
        return times
