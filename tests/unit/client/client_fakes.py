"""An API server for the client's unit tests: one namespace's Jobs over
``httpx.MockTransport``, with scripted watches and refusals."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

SERVER = "https://kube.test"
NAMESPACE = "team-a"
JOBS_PATH = f"/apis/shiftboss.io/v1alpha1/namespaces/{NAMESPACE}/jobs"
REASONS = {403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 410: "Expired", 503: ""}


def status_body(code: int, message: str = "injected") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "reason": REASONS.get(code, ""),
        "message": message,
        "code": code,
    }


def job_object(name: str, version: int, phase: str | None = None, **status: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": str(version)},
        "spec": {"pool": "demo", "skill": "add", "params": {}},
    }
    if phase:
        obj["status"] = {"phase": phase, "attempt": 1, **status}
    return obj


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": obj}


def write_kubeconfig(path: Path, contexts: dict[str, str | None]) -> Path:
    """A kubeconfig with one context per ``{name: namespace}``, the first current."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": SERVER, "insecure-skip-tls-verify": True}}
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": name, "context": {"cluster": "c", "user": "u", "namespace": ns}}
                    for name, ns in contexts.items()
                ],
                "current-context": next(iter(contexts)),
            }
        )
    )
    return path


@dataclass
class FakeApi:
    """``jobs`` by name; ``watches``: the answers to the next watches, each a list of
    events (the stream, then its end) or a status code; with none left a watch stays
    open with nothing to say. ``refusals``: status codes for the next other requests."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    watches: list[list[dict[str, Any]] | int] = field(default_factory=list)
    refusals: list[int] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    version: int = 100

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add(self, obj: dict[str, Any]) -> None:
        self.jobs[obj["metadata"]["name"]] = obj

    def sent(self, method: str, *, watch: bool = False) -> list[httpx.Request]:
        return [
            r
            for r in self.requests
            if r.method == method and (r.url.params.get("watch") == "true") == watch
        ]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.params.get("watch") == "true":
            return await self._watch()
        if self.refusals:
            code = self.refusals.pop(0)
            return httpx.Response(code, json=status_body(code))
        name = request.url.path.removeprefix(JOBS_PATH).strip("/")
        body = json.loads(request.content) if request.content else {}
        if request.method == "POST":
            self.version += 1
            meta = body["metadata"]
            name = meta.get("name") or meta["generateName"] + "x7k2p"
            meta.update(name=name, namespace=NAMESPACE, resourceVersion=str(self.version))
            self.jobs[name] = body
            return httpx.Response(201, json=body)
        if not name:
            return httpx.Response(200, json={"kind": "JobList", "items": list(self.jobs.values())})
        if name not in self.jobs:
            return httpx.Response(
                404, json=status_body(404, f'jobs.shiftboss.io "{name}" not found')
            )
        if request.method == "PATCH":
            self.jobs[name]["spec"].update(body["spec"])
        return httpx.Response(200, json=self.jobs[name])

    async def _watch(self) -> httpx.Response:
        if not self.watches:
            await asyncio.Event().wait()  # a watch with nothing to report, until cancelled
        answer = self.watches.pop(0)
        if isinstance(answer, int):
            return httpx.Response(answer, json=status_body(answer))
        return httpx.Response(200, content=b"".join(json.dumps(e).encode() + b"\n" for e in answer))
