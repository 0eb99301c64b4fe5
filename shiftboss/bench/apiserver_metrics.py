"""The API server's own request counter, ``apiserver_request_total``: scraped from
kube-apiserver's ``/metrics`` before and after a workload, diffed, and sorted into the
writes and reads a workload cost, so "writes per job" is what the server saw, not what
the operator says it sent.

The counter has no client label: everything that talked to the API server in the
window is counted (the bench's own creates, the controllers, the process node's pod
and lease writes). The breakdown names each part so the reader can tell them apart.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

import httpx

from shiftboss.kube import KubeConfig
from shiftboss.kube.client import KubeAuth

METRIC = "apiserver_request_total"
#: The ``verb`` label is the HTTP method (``POST`` creates, ``PUT`` updates), refined
#: into ``LIST``, ``WATCH``, ``APPLY`` (server-side apply) and ``DELETECOLLECTION``.
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
READ_VERBS = frozenset({"GET", "LIST", "WATCH", "WATCHLIST"})
#: Requests that are "created" but never stored: they cost a round trip, not an etcd write.
REVIEWS = frozenset({"tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews"})
SHIFTBOSS_GROUP = "shiftboss.io"

_SAMPLE = re.compile(rf"^{METRIC}\{{(?P<labels>[^}}]*)\}}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class RequestKey(NamedTuple):
    verb: str
    group: str
    resource: str
    subresource: str


Counts = Counter[RequestKey]


def parse(text: str) -> Counts:
    """``apiserver_request_total`` from Prometheus text, summed over codes and scopes."""
    counts: Counts = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        key = RequestKey(
            labels.get("verb", ""),
            labels.get("group", ""),
            labels.get("resource", ""),
            labels.get("subresource", ""),
        )
        counts[key] += int(float(match["value"]))
    return counts


def diff(before: Counts, after: Counts) -> Counts:
    """What happened between two scrapes (keys that did not move are left out)."""
    moved: Counts = Counter()
    for key, value in after.items():
        delta = value - before.get(key, 0)
        if delta:
            moved[key] = delta
    return moved


def _name(key: RequestKey) -> str:
    resource = f"{key.group}/{key.resource}" if key.group else key.resource
    return f"{key.verb} {resource}" + (f"/{key.subresource}" if key.subresource else "")


@dataclass(frozen=True)
class Breakdown:
    """A window's requests sorted by what they were, as totals (see ``per``)."""

    job_creates: int = 0
    job_status_writes: int = 0
    job_other_writes: int = 0
    events: int = 0
    pods: int = 0
    other_writes: int = 0
    reads: int = 0
    reviews: int = 0
    #: Every write and review that is not a Job create or a Job status write, by name.
    other: dict[str, int] = field(default_factory=dict)

    @property
    def writes(self) -> int:
        return (
            self.job_creates
            + self.job_status_writes
            + self.job_other_writes
            + self.events
            + self.pods
            + self.other_writes
        )

    def per(self, jobs: int) -> dict[str, float]:
        """Each figure divided by ``jobs``, two decimals."""
        figures = {
            "job_creates": self.job_creates,
            "job_status_writes": self.job_status_writes,
            "job_other_writes": self.job_other_writes,
            "events": self.events,
            "pods": self.pods,
            "other_writes": self.other_writes,
            "all_writes": self.writes,
            "reads": self.reads,
            "reviews": self.reviews,
        }
        return {name: round(value / jobs, 2) if jobs else 0.0 for name, value in figures.items()}


def breakdown(moved: Counts) -> Breakdown:
    """Sort a diff into Job creates, Job status writes, Events, pods, other writes, reads."""
    sums: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for key, count in moved.items():
        if key.verb in READ_VERBS:
            sums["reads"] += count
            continue
        if key.verb not in WRITE_VERBS:
            continue  # CONNECT (exec, proxy): neither a stored write nor a read of state
        is_job = key.group == SHIFTBOSS_GROUP and key.resource == "jobs"
        if is_job and key.subresource == "" and key.verb == "POST":
            bucket = "job_creates"
        elif is_job and key.subresource == "status":
            bucket = "job_status_writes"
        elif is_job:
            bucket = "job_other_writes"
        elif key.resource == "events":
            bucket = "events"
        elif key.resource == "pods":
            bucket = "pods"
        elif key.resource in REVIEWS:
            bucket = "reviews"
        else:
            bucket = "other_writes"
        sums[bucket] += count
        if bucket not in ("job_creates", "job_status_writes"):
            other[_name(key)] += count
    return Breakdown(
        job_creates=sums["job_creates"],
        job_status_writes=sums["job_status_writes"],
        job_other_writes=sums["job_other_writes"],
        events=sums["events"],
        pods=sums["pods"],
        other_writes=sums["other_writes"],
        reads=sums["reads"],
        reviews=sums["reviews"],
        other=dict(other.most_common()),
    )


class MetricsScraper:
    """Reads kube-apiserver's ``/metrics`` with the admin kubeconfig's credentials."""

    def __init__(self, config: KubeConfig) -> None:
        self._http = httpx.AsyncClient(
            base_url=config.server,
            verify=config.ssl_context(),
            auth=KubeAuth(config),
            timeout=30.0,
            trust_env=False,
        )

    async def scrape(self) -> Counts:
        response = await self._http.get("/metrics")
        response.raise_for_status()
        return parse(response.text)

    async def close(self) -> None:
        await self._http.aclose()
