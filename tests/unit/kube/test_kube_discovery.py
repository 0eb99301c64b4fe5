"""``wait_for_resources``: the operator starts only once its CRDs are served."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from shiftboss.kube.client import ApiError
from shiftboss.kube.discovery import wait_for_resources


class Discovery:
    """Answers the group-version discovery path from a script, one answer per call."""

    def __init__(self, *answers: set[str] | int) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def get(self, path: str, **_: Any) -> dict[str, Any]:
        assert path == "/apis/shiftboss.io/v1alpha1"
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, int):
            raise ApiError(answer, "NotFound" if answer == 404 else "Forbidden", "x")
        return {"resources": [{"name": name} for name in answer]}


async def test_waits_through_not_found_and_partial_until_both_are_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = Discovery(404, {"jobs"}, {"jobs", "jobs/status", "workerpools"})
    with caplog.at_level(logging.WARNING, "shiftboss.discovery"):
        await wait_for_resources(client, poll_seconds=0, warn_every_seconds=0)  # type: ignore[arg-type]
    assert client.calls == 3
    assert "jobs, workerpools" in caplog.text and "workerpools in" in caplog.text
    assert "kubectl apply --server-side -f crds/" in caplog.text


async def test_returns_at_once_when_served() -> None:
    client = Discovery({"jobs", "workerpools"})
    await wait_for_resources(client, poll_seconds=0)  # type: ignore[arg-type]
    assert client.calls == 1


async def test_other_errors_are_not_swallowed() -> None:
    with pytest.raises(ApiError):
        await wait_for_resources(Discovery(403), poll_seconds=0)  # type: ignore[arg-type]
