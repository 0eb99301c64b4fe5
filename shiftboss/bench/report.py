"""The bench's output: one table on stdout and the same figures as JSON, with the
machine, the versions and the settings beside them. ``render`` and ``render_scale``
are pure functions of the JSON document."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Results = dict[str, Any]
Row = tuple[str, str]


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:")), 0)
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "cpu_model": model or platform.processor(),
        "kernel": platform.release(),
    }


def versions(root: Path) -> dict[str, Any]:
    pinned = dict(
        line.split("=", 1)
        for line in (root / "hack" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    git = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return {
        "python": platform.python_version(),
        "shiftboss_commit": git.stdout.strip() or "unknown",
        "kubernetes": pinned.get("KUBE_VERSION", "unknown"),
        "etcd": pinned.get("ETCD_VERSION", "unknown"),
    }


def write_json(results: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def _lat(latency: dict[str, Any]) -> str:
    def cell(value: float) -> str:
        return "-" if value != value else f"{value:g}"  # NaN: no sample

    return " / ".join(cell(latency[k]) for k in ("p50_ms", "p95_ms", "p99_ms"))


def _pct(part: float, whole: float | None) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "-"


def _writes(per_job: dict[str, float]) -> str:
    return (
        f"create {per_job['job_creates']:g}, status {per_job['job_status_writes']:g}, "
        f"other Job {per_job['job_other_writes']:g}, Events {per_job['events']:g}, "
        f"pods {per_job['pods']:g}, other {per_job['other_writes']:g} "
        f"(all {per_job['all_writes']:g}); reads {per_job['reads']:g}"
    )


def _table(title: str, rows: Iterable[Row]) -> str:
    rows = list(rows)
    width = max(len(label) for label, _ in rows)
    lines = [title, "-" * len(title)]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)


def _header(results: Results) -> list[Row]:
    m, v = results["machine"], results["versions"]
    return [
        ("machine", f"{m['cores']} cores, {m['memory_gib']} GiB, {m['cpu_model']}"),
        (
            "versions",
            f"shiftboss {v['shiftboss_commit']}, Python {v['python']}, "
            f"Kubernetes {v['kubernetes']}, etcd {v['etcd']}",
        ),
        ("wall time", f"{results.get('wall_seconds', 0):.0f} s"),
    ]


def _ceiling_rows(ceiling: Results) -> list[Row]:
    levels = ceiling["levels"]
    best_create = max(levels, key=lambda lv: lv["creates_per_second"])
    best_patch = max(levels, key=lambda lv: lv["patches_per_second"])
    bounds = {int(k): v for k, v in ceiling["bounds"].items()}
    tried = "/".join(str(lv["concurrency"]) for lv in levels)
    errors = sum(lv["errors"] for lv in levels)
    return [
        (
            f"ceiling: Job creates/s ({ceiling['ops_per_level']} per level, {tried} in flight)",
            f"{ceiling['create_rate']:g} (at {best_create['concurrency']})",
        ),
        (
            "ceiling: conditional status merge-patches/s",
            f"{ceiling['patch_rate']:g} (at {best_patch['concurrency']}); {errors} errors",
        ),
        (
            "ceiling: bound at 3 / 2 writes per job (jobs/s)",
            f"{bounds.get(3, '-')} / {bounds.get(2, '-')}",
        ),
    ]


def _burst_rows(size: str, burst: Results, bounds: dict[int, float]) -> list[Row]:
    o = burst["outcome"]
    label = f"burst of {int(size):,}"
    rate = burst["jobs_per_second"]
    return [
        (
            f"{label}: jobs/s (first create → last done)",
            f"{rate:g} = {_pct(rate, bounds.get(3))} of the 3-write bound, "
            f"{_pct(rate, bounds.get(2))} of the 2-write bound ({burst['seconds']:g} s)",
        ),
        (f"{label}: create→running p50 / p95 / p99 (ms)", _lat(o["create_to_running"])),
        (f"{label}: create→done p50 / p95 / p99 (ms)", _lat(o["create_to_done"])),
        (f"{label}: requests per job (API server)", _writes(burst["requests_per_job"])),
        (
            f"{label}: creator (competes with the operator)",
            f"{burst['creates_per_second']:g} creates/s, {burst['creators']} in flight",
        ),
        (
            f"{label}: succeeded / not / create errors",
            f"{o['succeeded']} / {o['not_succeeded']} / {o['create_errors']}",
        ),
    ]


def _peer_rows(peer: Results, reference: Results | None) -> list[Row]:
    o = peer["outcome"]
    label = f"batch/v1 peer, {o['jobs']} Jobs (a pod each)"
    rows = [
        (f"{label}: jobs/s", f"{peer['jobs_per_second']:g} ({peer['seconds']:g} s)"),
        (f"{label}: create→done p50 / p95 / p99 (ms)", _lat(o["create_to_done"])),
        (f"{label}: requests per job", _writes(peer["requests_per_job"])),
    ]
    if reference and peer["jobs_per_second"]:
        ours = reference["outcome"]["create_to_done"]["p50_ms"]
        theirs = o["create_to_done"]["p50_ms"]
        rows.append(
            (
                f"ratio Shiftboss ({reference['outcome']['jobs']:,} burst) to batch/v1",
                f"{reference['jobs_per_second'] / peer['jobs_per_second']:.1f}x the jobs/s; "
                f"create→done p50 of batch/v1 / of Shiftboss = {theirs / ours:.2f}",
            )
        )
    return rows


def _sustained_rows(s: Results) -> list[Row]:
    rows = [
        (
            f"sustained: {s['target_jobs_per_second']:g} jobs/s for {s['seconds']} s (TTL on)",
            f"{s['succeeded']}/{s['jobs']} succeeded, {s['errors']} errors, "
            f"{s['jobs_deleted_by_ttl']} deleted by TTL",
        )
    ]
    for w in s["windows"]:
        rows.append(
            (
                f"sustained from {w['start_second']} s: create→done p50 / p95 / p99 (ms)",
                f"{_lat(w['create_to_done'])}; {w['jobs']} jobs; RSS {w['rss_mib']:g} MiB",
            )
        )
    flat = {True: "flat", False: "NOT flat"}
    rows.append(
        (
            "sustained: first vs last window",
            f"latency {flat[s['latency_flat']]}, memory {flat[s['memory_flat']]}",
        )
    )
    return rows


def _structures_rows(structures: Results | None) -> list[Row]:
    if not structures:
        return [("dispatcher structures (in process)", "not measured (module not present)")]

    def cell(name: str, value: Any) -> str:
        if name.endswith("_us"):
            return f"{name.removesuffix('_us').replace('_', ' ')} {value:g} µs"
        return f"{name} {value}"

    return [
        (
            f"dispatcher structures at {int(size):,} (in process, per op)",
            ", ".join(cell(name, value) for name, value in figures.items()),
        )
        for size, figures in structures.items()
    ]


def _profile_rows(profile: Results | None) -> list[Row]:
    if not profile:
        return []
    rows = [("profile (py-spy, own time) written to", str(profile["file"]))]
    rows += [(f"  {pct:>5.1f} %", frame) for frame, pct in profile["top"]]
    return rows


def render(results: Results) -> str:
    """The table of ``make bench``."""
    rows = _header(results)
    ceiling = results.get("ceiling")
    bounds: dict[int, float] = {}
    if ceiling:
        rows += _ceiling_rows(ceiling)
        bounds = {int(k): v for k, v in ceiling["bounds"].items()}
    idle = results["idle_pool"]
    rows += [
        (f"idle pool ({idle['jobs']} sequential): create→running p50/p95/p99 (ms)",
         _lat(idle["create_to_running"])),
        ("idle pool: create→done p50 / p95 / p99 (ms)", _lat(idle["create_to_done"])),
    ]  # fmt: skip
    bursts = results["bursts"]
    for size, burst in bursts.items():
        rows += _burst_rows(size, burst, bounds)
    if results.get("peer"):
        reference = next(iter(bursts.values()), None)
        rows += _peer_rows(results["peer"], reference)
    memory, restart = results["memory"], results["restart"]
    rows += [
        (
            f"operator RSS: start / with {memory['finished_jobs']:,} finished Jobs (MiB)",
            f"{memory['rss_mib_start']:g} / {memory['rss_mib_finished']:g}",
        ),
        (
            f"restart with {restart['jobs_present']:,} Jobs: to /readyz, to first dispatch (s)",
            f"{restart['seconds_to_ready']:g}, {restart['seconds_to_first_dispatch']:g} "
            f"(by the {restart['first_dispatch_by']}); RSS after {restart['rss_mib_after']:g} MiB",
        ),
    ]
    if results.get("sustained"):
        rows += _sustained_rows(results["sustained"])
    rows += _structures_rows(results.get("structures"))
    rows.append(("backfill: partitions/s, writes per partition", "not built yet"))
    rows += _profile_rows(results.get("profile"))
    return _table("make bench", rows)


def render_scale(results: Results) -> str:
    """The table of ``make bench-scale``."""
    s = results["scale"]
    restart = s["restart"]
    rows = [
        *_header(results),
        (
            f"create {s['queued']:,} queued Jobs (pool without workers)",
            f"{s['create_seconds']:g} s, {s['creates_per_second']:g} creates/s, "
            f"{s['create_errors']} errors; pool status counted {s['queued_seen']:,} queued",
        ),
        (
            f"operator RSS: start / with {s['queued']:,} queued (MiB)",
            f"{s['rss_mib_before']:g} / {s['rss_mib_queued']:g}",
        ),
        (
            f"restart with {restart['jobs_present']:,} queued: to /readyz, to first dispatch (s)",
            f"{restart['seconds_to_ready']:g}, {restart['seconds_to_first_dispatch']:g} "
            f"(by the {restart['first_dispatch_by']}); RSS after {restart['rss_mib_after']:g} MiB",
        ),
        (
            f"claim round trip, {s['claim_round_trip']['count']} claims (ms, p50 / p95 / p99)",
            _lat(s["claim_round_trip"]) + " (HTTP, includes the claim's status write)",
        ),
    ]
    rows += _structures_rows(s.get("structures"))
    return _table("make bench-scale", rows)
