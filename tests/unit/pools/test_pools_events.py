"""Event aggregation: one Event per distinct failure, with a count (pure parts)."""

from __future__ import annotations

import dataclasses
import re

from shiftboss.kube.events import EventKey, EventLog

KEY = EventKey(
    kind="WorkerPool",
    namespace="media",
    name="resize",
    uid="u-1",
    type="Warning",
    reason="WorkerCrashLoop",
    message="worker exited with code 1: ModuleNotFoundError: No module named 'x'",
)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_repeats_raise_the_count_of_one_series() -> None:
    log = EventLog()
    first = log.seen(KEY, "t0")
    for at in ("t1", "t2"):
        again = log.seen(KEY, at)
    assert again is first
    assert (first.count, first.first, first.last, len(log)) == (3, "t0", "t2", 1)


def test_each_distinct_failure_is_its_own_series() -> None:
    log = EventLog()
    variants = [
        KEY,
        dataclasses.replace(KEY, message="worker exited with code 2"),
        dataclasses.replace(KEY, reason="PodCreateFailed"),
        dataclasses.replace(KEY, type="Normal"),
        dataclasses.replace(KEY, uid="u-2"),  # the pool deleted and made again
        dataclasses.replace(KEY, name="other"),
    ]
    for key in variants:
        assert log.seen(key, "t0").count == 1
    assert len(log) == len(variants)
    assert len({key.object_name for key in variants}) == len(variants)


def test_memory_is_bounded_least_recently_seen_forgotten_first() -> None:
    log = EventLog(capacity=3)
    keys = [dataclasses.replace(KEY, message=f"m{i}") for i in range(5)]
    for key in keys[:3]:
        log.seen(key, "t0")
    log.seen(keys[0], "t1")  # seen again: now the most recent
    log.seen(keys[3], "t2")  # forgets keys[1]
    log.seen(keys[4], "t3")  # forgets keys[2]
    assert len(log) == 3
    assert log.seen(keys[0], "t4").count == 3  # still remembered
    assert log.seen(keys[1], "t5").count == 1  # forgotten: a new series


def test_event_names_are_stable_valid_and_short_enough() -> None:
    assert KEY.object_name == dataclasses.replace(KEY).object_name
    assert KEY.object_name.startswith("resize.")
    long = dataclasses.replace(KEY, name="a" * 240 + "-b.c")
    for key in (KEY, long):
        assert len(key.object_name) <= 253
        assert DNS_SUBDOMAIN.match(key.object_name), key.object_name
