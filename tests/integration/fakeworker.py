"""A fake worker for integration tests: the worker protocol spoken by hand over HTTP,
as an external worker (or an attacker) would, plus small helpers to look at Jobs."""

from __future__ import annotations

from typing import Any

import httpx
from conftest import get

from shiftboss.testing.processes import wait_until
from worker_runtime.protocol import (
    Ack,
    Assignment,
    ClaimResponse,
    Command,
    ErrorDetail,
    ErrorResponse,
    HeartbeatResponse,
    RegisterRequest,
    RegisterResponse,
    SkillSpec,
)

JOBS = "jobs.shiftboss.io"


def create_token(cluster, namespace: str, account: str = "default", audience: str = "shiftboss"):
    args = ("-n", namespace, "create", "token", account, "--audience", audience)
    return cluster.kubectl(*args).stdout.strip()


def register_body(pool: str, worker_id: str, skills: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A well-formed registration of ``worker_id`` in ``pool`` offering ``skills``."""
    return RegisterRequest(
        pool=pool,
        worker_id=worker_id,
        skills=[SkillSpec(name=name, input_schema=schema) for name, schema in skills.items()],
        capacity=1,
        version="0.0.0-test",
        runtime="test",
    ).model_dump(mode="json")


class Api:
    """The worker protocol over httpx, as a worker with ``token`` would speak it."""

    def __init__(self, url: str, token: str, *, verify: str | bool = True) -> None:
        assert url.startswith(("http://127.", "https://127.")), url  # this machine only
        self.http = httpx.Client(
            base_url=url, timeout=httpx.Timeout(40.0), trust_env=False, verify=verify
        )
        self.token = token

    def close(self) -> None:
        self.http.close()

    def post(self, path: str, body: Any, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.http.post(path, json=body, headers=headers)

    def ok(self, path: str, body: Any) -> dict:
        response = self.post(path, body)
        assert response.status_code == 200, f"POST {path}: {response.status_code} {response.text}"
        return response.json()

    def register(self, worker_id: str, skills: dict[str, dict], pool: str = "demo"):
        body = register_body(pool, worker_id, skills)
        return RegisterResponse.model_validate(self.ok("/v1/workers/register", body))

    def register_when_pool_known(self, worker_id: str, skills: dict[str, dict]):
        """Register as soon as the operator has seen the pool (it watches it in)."""
        registered: list[RegisterResponse] = []

        def attempt() -> bool:
            registered.append(self.register(worker_id, skills))
            return True

        wait_until(attempt, timeout=30, interval=0.3, what=f"worker {worker_id} to register")
        return registered[-1]

    def claim(
        self,
        worker_id: str,
        wait: float = 10.0,
        max_attempts: int = 1,
        request_id: str | None = None,
    ) -> list[Assignment]:
        body: dict[str, Any] = {"max_attempts": max_attempts, "wait_seconds": wait}
        if request_id is not None:
            body["request_id"] = request_id
        return ClaimResponse.model_validate(
            self.ok(f"/v1/workers/{worker_id}/claim", body)
        ).assignments

    def heartbeat(self, worker_id: str, attempt_ids: list[str]) -> list[Command]:
        body = {"attempt_ids": attempt_ids, "draining": False}
        return HeartbeatResponse.model_validate(
            self.ok(f"/v1/workers/{worker_id}/heartbeat", body)
        ).commands

    def complete(self, attempt_id: str, result: Any) -> httpx.Response:
        return self.post(f"/v1/attempts/{attempt_id}/complete", {"result": result})

    def fail(self, attempt_id: str, error_type: str, message: str = "", retryable: bool = True):
        body = {"error_type": error_type, "message": message, "retryable": retryable}
        return self.post(f"/v1/attempts/{attempt_id}/fail", body)

    def progress(self, attempt_id: str, percent: float, message: str = "") -> httpx.Response:
        body = {"percent": percent, "message": message}
        return self.post(f"/v1/attempts/{attempt_id}/progress", body)


def assert_error(
    response: httpx.Response, status: int, code: str, field: str | None = None
) -> ErrorDetail:
    """The response is exactly ``status`` with an ErrorResponse naming ``code`` (and ``field``)."""
    assert response.status_code == status, (
        f"expected {status} {code}, got {response.status_code} "
        f"({response.headers.get('content-type')}): {response.text[:500]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.headers,
        response.text[:200],
    )
    error = ErrorResponse.model_validate(response.json()).error
    assert error.code == code, error
    assert error.message.strip(), error
    assert error.field == field, error
    return error


def assert_ack(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert Ack.model_validate(response.json()).ok is True


def job_state(cluster, namespace: str, name: str) -> tuple[str, dict]:
    """(resourceVersion, status) of a Job: what "nothing changed" compares."""
    obj = get(cluster, namespace, JOBS, name)
    return obj["metadata"]["resourceVersion"], obj.get("status") or {}


def job_status(cluster, namespace: str, name: str) -> dict:
    return job_state(cluster, namespace, name)[1]


def wait_phase(
    cluster, namespace: str, name: str, phases: tuple[str, ...], timeout: float = 30
) -> dict:
    def reached() -> dict | None:
        status = job_status(cluster, namespace, name)
        return status if status.get("phase") in phases else None

    return wait_until(reached, timeout=timeout, interval=0.2, what=f"job {name} in {phases}")


def uid_of(cluster, namespace: str, name: str) -> str:
    return get(cluster, namespace, JOBS, name)["metadata"]["uid"]
