"""Parsing, diffing and sorting kube-apiserver's ``apiserver_request_total``."""

from __future__ import annotations

from shiftboss.bench.apiserver_metrics import RequestKey, breakdown, diff, parse

HEAD = """# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_duration_seconds_bucket{verb="POST",le="0.1"} 99
"""


def sample(
    verb: str, resource: str, value: float, *, group: str = "", sub: str = "", code: str = "200"
) -> str:
    return (
        f'apiserver_request_total{{code="{code}",component="apiserver",dry_run="",'
        f'group="{group}",resource="{resource}",scope="resource",subresource="{sub}",'
        f'verb="{verb}",version="v1"}} {value}\n'
    )


def test_parse_sums_codes_and_ignores_other_metrics() -> None:
    text = HEAD + sample("POST", "jobs", 10, group="shiftboss.io", code="201")
    text += sample("POST", "jobs", 2, group="shiftboss.io", code="409")
    text += sample("PATCH", "jobs", 7.0, group="shiftboss.io", sub="status")
    counts = parse(text)
    assert counts == {
        RequestKey("POST", "shiftboss.io", "jobs", ""): 12,
        RequestKey("PATCH", "shiftboss.io", "jobs", "status"): 7,
    }


def test_parse_reads_scientific_notation_and_escaped_label_values() -> None:
    text = 'apiserver_request_total{verb="GET",resource="x\\"y",group="",subresource=""} 1.5e+06\n'
    assert parse(text) == {RequestKey("GET", "", 'x\\"y', ""): 1_500_000}


def test_diff_keeps_only_what_moved() -> None:
    before = parse(sample("POST", "jobs", 5, group="shiftboss.io") + sample("GET", "pods", 3))
    after = parse(
        sample("POST", "jobs", 105, group="shiftboss.io")
        + sample("GET", "pods", 3)
        + sample("POST", "events", 4)
    )
    assert diff(before, after) == {
        RequestKey("POST", "shiftboss.io", "jobs", ""): 100,
        RequestKey("POST", "", "events", ""): 4,
    }


def test_breakdown_sorts_writes_by_kind_and_counts_reads() -> None:
    text = (
        sample("POST", "jobs", 100, group="shiftboss.io")
        + sample("PATCH", "jobs", 200, group="shiftboss.io", sub="status")
        + sample("PUT", "jobs", 1, group="shiftboss.io", sub="status")
        + sample("PATCH", "jobs", 3, group="shiftboss.io")
        + sample("DELETE", "jobs", 5, group="shiftboss.io")
        + sample("POST", "events", 2)
        + sample("PATCH", "pods", 6, sub="status")
        + sample("PUT", "leases", 4, group="coordination.k8s.io")
        + sample("POST", "tokenreviews", 8, group="authentication.k8s.io")
        + sample("GET", "jobs", 9, group="shiftboss.io")
        + sample("LIST", "pods", 1)
        + sample("WATCH", "jobs", 2, group="shiftboss.io")
        + sample("CONNECT", "pods", 1, sub="exec")
    )
    sorted_ = breakdown(parse(text))
    assert sorted_.job_creates == 100
    assert sorted_.job_status_writes == 201
    assert sorted_.job_other_writes == 8
    assert (sorted_.events, sorted_.pods, sorted_.other_writes) == (2, 6, 4)
    assert (sorted_.reviews, sorted_.reads) == (8, 12)
    assert sorted_.writes == 100 + 201 + 8 + 2 + 6 + 4
    assert sorted_.other == {
        "PATCH pods/status": 6,
        "DELETE shiftboss.io/jobs": 5,
        "PUT coordination.k8s.io/leases": 4,
        "PATCH shiftboss.io/jobs": 3,
        "POST events": 2,
        "POST authentication.k8s.io/tokenreviews": 8,
    }


def test_per_job_divides_every_figure() -> None:
    text = sample("POST", "jobs", 100, group="shiftboss.io") + sample(
        "PATCH", "jobs", 250, group="shiftboss.io", sub="status"
    )
    per = breakdown(parse(text)).per(100)
    assert (per["job_creates"], per["job_status_writes"], per["all_writes"]) == (1.0, 2.5, 3.5)
    assert breakdown(parse(text)).per(0)["all_writes"] == 0.0
