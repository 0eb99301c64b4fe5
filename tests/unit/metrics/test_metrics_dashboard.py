"""The Grafana dashboard and docs/metrics.md against the metrics the operator registers:
a panel that queries a metric which does not exist, or a doc that lists one that does
not (or misses one), fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shiftboss import metrics

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "charts" / "shiftboss" / "dashboards" / "shiftboss.json"
DOC = ROOT / "docs" / "metrics.md"
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
#: PromQL words that look like metric names: keywords and grouping modifiers.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
KEYWORDS |= {"unless", "bool", "offset", "inf", "nan"}


def registered() -> dict[str, str]:
    """Each metric as Prometheus names it (counters with _total) -> its type."""
    names = {}
    for family in metrics.REGISTRY.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        names[name] = family.type
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: strings, label matchers, ranges,
    grouping labels and function names taken out, what is left are selectors."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:.])[A-Za-z_:][\w:]*", expr):  # not 1h, 0.5e3
        word, rest = match.group(), expr[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS:
            continue  # a function call or a keyword
        names.add(word)
    return names


def base_name(name: str, types: dict[str, str]) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and types.get(base) == "histogram":
            return base
    return name


def queries(dashboard: dict[str, Any]) -> list[str]:
    found = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":  # label_values(<selector>, <label name>)
            query = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"]["query"])
            assert query is not None, variable
            found.append(query.group(1))
    return found


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


@pytest.mark.parametrize("expr", queries(dashboard()))
def test_each_query_selects_only_registered_metrics(expr: str) -> None:
    types = registered()
    names = {base_name(name, types) for name in metric_names(expr)}
    assert names, f"no metric found in {expr!r}"
    assert names <= set(types), names - set(types)


def test_the_extractor_sees_through_promql() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le, pool) (rate(x_bucket{pool=~"a|b", e="sum("}[5m])))'
        " / ignoring(code) y_total offset 1h"
    )
    assert metric_names(expr) == {"x_bucket", "y_total"}


def test_the_dashboard_covers_what_an_operator_on_call_needs() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:  # every panel follows the data source picked
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])
    used = {base_name(n, registered()) for e in queries(board) for n in metric_names(e)}
    assert {
        "shiftboss_queued_jobs",  # queue depth
        "shiftboss_queue_oldest_job_age_seconds",  # queue age
        "shiftboss_jobs_claimed_total",  # throughput
        "shiftboss_jobs_finished_total",
        "shiftboss_job_queue_duration_seconds",  # latency
        "shiftboss_attempts_failed_total",  # failures by error type
        "shiftboss_workers",  # workers by state
        "shiftboss_job_status_writes_total",  # API writes and conflicts
        "shiftboss_job_status_conflicts_total",
        "shiftboss_kube_api_requests_total",
    } <= used


def test_the_docs_list_exactly_the_registered_metrics() -> None:
    documented = re.findall(r"^\| `(shiftboss_[a-z_]+)` \|", DOC.read_text(), re.MULTILINE)
    assert len(documented) == len(set(documented)), "a metric is listed twice"
    assert set(documented) == set(registered())
