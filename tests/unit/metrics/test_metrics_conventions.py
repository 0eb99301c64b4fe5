"""The operator's metrics keep Prometheus's conventions, and the API server's requests
are counted by method and code."""

from __future__ import annotations

import httpx
import pytest

from shiftboss import metrics
from shiftboss.kube import client as client_module
from shiftboss.kube.client import ApiError, KubeClient
from shiftboss.kube.config import KubeConfig

#: Labels whose values would grow without bound (one per job, attempt or worker), and
#: labels Prometheus sets on every target itself.
UNBOUNDED_OR_RESERVED = {
    "job",
    "name",
    "uid",
    "attempt",
    "attempt_id",
    "worker",
    "worker_id",
    "instance",
}
BASE_UNITS = ("_seconds", "_bytes")


def families():
    return list(metrics.REGISTRY.collect())


@pytest.mark.parametrize("family", families(), ids=lambda f: f.name)
def test_each_metric_keeps_the_naming_conventions(family):
    assert family.name.startswith("shiftboss_")
    assert family.documentation
    if family.type == "histogram":
        assert family.name.endswith(BASE_UNITS), "a histogram measures something in base units"
    if family.type == "gauge":
        assert not family.name.endswith("_total"), "_total is for counters"
    for unit in ("_milliseconds", "_ms", "_minutes", "_hours", "_kilobytes", "_percent"):
        assert unit not in family.name


def test_no_label_grows_with_jobs_or_workers():
    # A labelled metric without children has no samples: ask the collectors (private,
    # but the only place prometheus_client keeps label names).
    collectors = set(metrics.REGISTRY._names_to_collectors.values())
    assert collectors
    for collector in collectors:
        names = set(collector._labelnames)  # type: ignore[attr-defined]
        assert not names & UNBOUNDED_OR_RESERVED, (collector, names)


@pytest.fixture
def config(tmp_path) -> KubeConfig:
    path = tmp_path / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    return KubeConfig.from_file(path)


def requests_counted(method: str, code: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "shiftboss_kube_api_requests_total", {"method": method, "code": code}
    )
    return value or 0.0


async def test_every_answer_of_the_api_server_is_counted(config, monkeypatch):
    refusals = [429]

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and refusals:
            return httpx.Response(refusals.pop(), json={"kind": "Status"})
        if request.method == "DELETE":
            return httpx.Response(404, json={"kind": "Status", "reason": "NotFound"})
        if request.url.params.get("watch") == "true":
            return httpx.Response(200, content=b'{"type": "ADDED", "object": {}}\n')
        return httpx.Response(200, json={"kind": "Pod"})

    monkeypatch.setattr(client_module, "retry_after", lambda header: 0.0)
    expected = {
        ("GET", "200"): 1,
        ("POST", "429"): 1,
        ("POST", "200"): 1,
        ("DELETE", "404"): 1,
        ("WATCH", "200"): 1,
    }
    before = {key: requests_counted(*key) for key in expected}
    async with KubeClient(config, transport=httpx.MockTransport(answer)) as kube:
        await kube.get("/api/v1/pods")
        await kube.create("/api/v1/namespaces/ns/pods", {"kind": "Pod"})  # 429, then 200
        with pytest.raises(ApiError):
            await kube.delete("/api/v1/namespaces/ns/pods/gone")
        assert [event async for event in kube.watch("/api/v1/pods")]
    after = {key: requests_counted(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == expected
