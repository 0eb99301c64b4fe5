"""The bench's table, rendered from its JSON document, and its other pure helpers:
the profile summary, the sizes from the environment, the sustained-load verdicts."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest

from shiftboss.bench.bursts import BurstResult, Outcome
from shiftboss.bench.ceiling import Ceiling, Level
from shiftboss.bench.peer import PeerResult
from shiftboss.bench.profile import top_own
from shiftboss.bench.report import render, render_scale
from shiftboss.bench.scale import Restart, ScaleResult
from shiftboss.bench.sizes import Sizes
from shiftboss.bench.stats import Latency
from shiftboss.bench.sustained import latency_flat, memory_flat, window_seconds

PER_JOB = {
    "job_creates": 1.0,
    "job_status_writes": 2.0,
    "job_other_writes": 0.0,
    "events": 0.0,
    "pods": 0.0,
    "other_writes": 0.05,
    "all_writes": 3.05,
    "reads": 0.1,
    "reviews": 0.0,
}


def outcome(jobs: int, p50: float) -> Outcome:
    latency = Latency(jobs, p50, p50 * 2, p50 * 3)
    return Outcome(jobs, jobs, 0, 0, latency, latency)


def results() -> dict[str, Any]:
    ceiling = Ceiling(
        "bench-ceiling",
        600,
        [Level(8, 250.0, 300.0, 0), Level(32, 300.0, 400.0, 0)],
        300.0,
        400.0,
        {2: 171.4, 3: 120.0},
    )
    burst = BurstResult(outcome(1000, 500.0), 10.0, 100.0, 4.0, 250.0, 32, PER_JOB, {})
    peer = PeerResult(outcome(50, 2000.0), 25.0, 2.0, PER_JOB, {})
    restart = Restart(11_000, 20, 3.2, 3.5, "probe", 120.0)
    doc = {
        "machine": {"cores": 2, "memory_gib": 23.5, "cpu_model": "AMD EPYC", "kernel": "6"},
        "versions": {
            "python": "3.11.7",
            "shiftboss_commit": "abc1234",
            "kubernetes": "1.37.2",
            "etcd": "3.7.3",
        },
        "wall_seconds": 512.3,
        "ceiling": asdict(ceiling),
        "idle_pool": asdict(outcome(20, 7.5)),
        "bursts": {"1000": asdict(burst)},
        "peer": asdict(peer),
        "memory": {"rss_mib_start": 70.0, "rss_mib_finished": 150.5, "finished_jobs": 11_020},
        "restart": asdict(restart),
        "sustained": None,
        "structures": None,
        "profile": {"file": "bench-results/p.txt", "top": [("f (a.py)", 12.5)]},
    }
    return json.loads(json.dumps(doc))  # what the JSON file holds: string keys


def line(table: str, label: str) -> str:
    matches = [row for row in table.splitlines() if row.startswith(label)]
    assert len(matches) == 1, f"{label!r} in\n{table}"
    return matches[0]


def test_the_table_gives_throughput_as_a_fraction_of_both_bounds() -> None:
    table = render(results())
    assert "83 % of the 3-write bound, 58 % of the 2-write bound" in line(
        table, "burst of 1,000: jobs/s"
    )
    assert line(table, "ceiling: bound at 3 / 2 writes").endswith("120.0 / 171.4")
    assert line(table, "ceiling: Job creates/s").endswith("300 (at 32)")


def test_the_table_names_writes_per_job_and_the_peer_ratio() -> None:
    table = render(results())
    assert "create 1, status 2, other Job 0" in line(table, "burst of 1,000: requests per job")
    ratio = line(table, "ratio Shiftboss (1,000 burst) to batch/v1")
    assert "50.0x the jobs/s" in ratio and "= 4.00" in ratio
    assert "batch/v1 peer, 50 Jobs" in table


def test_the_table_says_what_is_not_built_or_not_measured() -> None:
    table = render(results())
    assert line(table, "backfill").endswith("not built yet")
    assert line(table, "dispatcher structures").endswith("not measured (module not present)")
    assert "12.5 %" in table and "f (a.py)" in table


def test_the_dispatcher_structures_figures_are_named_in_microseconds() -> None:
    doc = results()
    doc["structures"] = {"10000": {"claim_us": 5.771, "push_us": 4.5}}
    assert line(render(doc), "dispatcher structures at 10,000").endswith(
        "claim 5.771 µs, push 4.5 µs"
    )


def test_missing_latency_samples_render_as_dashes() -> None:
    doc = results()
    doc["idle_pool"]["create_to_running"] = asdict(Latency.of([]))
    assert line(render(doc), "idle pool (20 sequential)").endswith("- / - / -")


def test_the_scale_table() -> None:
    doc = results()
    restart = Restart(100_000, 1, 20.0, 21.5, "probe", 400.0)
    scale = ScaleResult(
        100_000, 500.0, 200.0, 0, 100_000, 70.0, 380.0, restart, Latency.of([0.004] * 50), None
    )
    doc["scale"] = json.loads(json.dumps(asdict(scale)))
    table = render_scale(doc)
    assert line(table, "operator RSS: start / with 100,000 queued").endswith("70 / 380")
    assert "20, 21.5 (by the probe)" in line(table, "restart with 100,000 queued")
    assert "4 / 4 / 4 (HTTP" in line(table, "claim round trip, 50 claims")


def test_profile_summary_counts_own_time_of_the_innermost_frame() -> None:
    collapsed = "\n".join(
        [
            "main (m.py);loop (l.py);parse (p.py) 30",
            "main (m.py);loop (l.py) 10",
            "main (m.py);send (s.py) 60",
            "garbage",
        ]
    )
    assert top_own(collapsed, 2) == [("send (s.py)", 60.0), ("parse (p.py)", 30.0)]


def test_sizes_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIFTBOSS_BENCH_BURSTS", "100, 2000")
    monkeypatch.setenv("SHIFTBOSS_BENCH_SUSTAINED_SECONDS", "0")
    monkeypatch.setenv("SHIFTBOSS_BENCH_PROFILE", "1")
    sizes = Sizes.from_env()
    assert (sizes.bursts, sizes.sustained_seconds, sizes.profile) == ((100, 2000), 0, True)
    assert (sizes.workers, sizes.concurrency, sizes.peer_jobs) == (4, 8, 50)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WORKERS", "four", "SHIFTBOSS_BENCH_WORKERS='four': expected a whole number, e.g. 4"),
        ("WORKERS", "0", "SHIFTBOSS_BENCH_WORKERS=0: must be at least 1"),
        ("BURSTS", "1000,x", "SHIFTBOSS_BENCH_BURSTS='1000,x': expected comma-separated"),
        ("SUSTAINED_FRACTION", "7", "SHIFTBOSS_BENCH_SUSTAINED_FRACTION=7.0: must lie between"),
    ],
)
def test_bad_sizes_name_the_variable_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(f"SHIFTBOSS_BENCH_{name}", value)
    with pytest.raises(ValueError) as error:
        Sizes.from_env()
    assert str(error.value).startswith(message)


def test_sustained_verdicts_compare_the_first_and_last_windows() -> None:
    first = Latency(100, 20.0, 40.0, 60.0)
    assert latency_flat(first, Latency(100, 25.0, 50.0, 110.0))  # within +50 ms
    assert latency_flat(first, Latency(100, 25.0, 50.0, 120.0))  # within 2x
    assert not latency_flat(first, Latency(100, 90.0, 150.0, 121.0))
    assert memory_flat(100.0, 115.0) and not memory_flat(100.0, 116.0)
    assert [window_seconds(s) for s in (300, 60, 10, 1)] == [60, 30, 5, 1]
