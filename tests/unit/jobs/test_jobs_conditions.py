"""A Job's conditions (``shiftboss.jobs.conditions``): set by every transition of the
state machine, for every phase, riding on the dispatcher's writes.

The phase x event table is the machine's (``test_jobs_machine``): every transition that
applies must leave exactly the conditions of the phase it reaches.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from dispatching import claim_one, submit, worker
from test_jobs_machine import (
    EVENT_SPECS,
    EVENTS,
    EXPECTED,
    NOW,
    PAIRS,
    SPEC,
    STATES,
    X,
    make_spec,
    running,
)

from shiftboss.api.common import ConditionStatus
from shiftboss.api.job import JobError, JobPhase, JobStatus
from shiftboss.jobs.conditions import failure_reason, with_conditions
from shiftboss.jobs.machine import (
    AttemptFailed,
    Claimed,
    Completed,
    DeadlineExceeded,
    ParamsRejected,
    transition,
)
from worker_runtime.protocol import ProgressReport

GENERATION = 7
T, F = "True", "False"

#: The conditions each phase calls for: type -> (status, reason); a Failed job's reason
#: depends on how it failed (FAILURES).
BY_PHASE: dict[JobPhase, dict[str, tuple[str, str]]] = {
    JobPhase.QUEUED: {"Ready": (F, "Queued"), "Reconciling": (T, "Queued")},
    JobPhase.RUNNING: {"Ready": (F, "Running"), "Reconciling": (T, "Running")},
    JobPhase.RETRYING: {"Ready": (F, "Retrying"), "Reconciling": (T, "Retrying")},
    JobPhase.SUCCEEDED: {"Ready": (T, "Succeeded"), "Complete": (T, "Succeeded")},
    JobPhase.CANCELLED: {"Ready": (F, "Cancelled"), "Stalled": (T, "Cancelled")},
    JobPhase.SUSPENDED: {"Ready": (F, "Suspended"), "Suspended": (T, "Suspended")},
}
#: A job that mirrors another (same idempotencyKey) while that one is unfinished.
MIRRORING = {"Ready": (F, "Mirroring"), "Reconciling": (T, "Mirroring")}
FAILURES = {
    "AttemptFailed(fatal)": "NotRetryable",
    "DeadlineExceeded": "DeadlineExceeded",
    "ParamsRejected": "InvalidParams",
}


def expected_conditions(event: str, status: JobStatus) -> dict[str, tuple[str, str]]:
    phase = status.phase
    assert phase is not None
    if phase == JobPhase.FAILED:
        reason = FAILURES[event]
        return {"Ready": (F, reason), "Stalled": (T, reason), "Failed": (T, reason)}
    if status.mirror_of is not None and phase == JobPhase.QUEUED:
        return MIRRORING
    return BY_PHASE[phase]


def summary(status: JobStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (str(c.status), c.reason or "") for c in status.conditions}


@pytest.mark.parametrize(("state", "event"), [p for p in PAIRS if EXPECTED[p] is not X])
def test_every_transition_sets_the_conditions_of_its_phase(state: str, event: str) -> None:
    spec = EVENT_SPECS.get(event, SPEC)
    result = transition(spec, STATES[state](), EVENTS[event](), generation=GENERATION)
    assert summary(result) == expected_conditions(event, result)
    assert result.observed_generation == GENERATION
    for condition in result.conditions:
        assert condition.message == result.message
        assert condition.observed_generation == GENERATION
        assert condition.last_transition_time == NOW  # none was set before


def test_last_transition_time_moves_only_when_a_status_changes() -> None:
    spec = make_spec(max_attempts=2)
    claimed = transition(spec, None, Claimed("w-1", NOW), generation=1)
    later = NOW + timedelta(seconds=30)
    retrying = transition(spec, claimed, AttemptFailed("IOError", "x", True, later))
    again = transition(spec, retrying, Claimed("w-2", later + timedelta(seconds=10)))
    done_at = later + timedelta(seconds=20)
    done = transition(spec, again, Completed("ok", done_at), generation=2)

    for status in (retrying, again):  # Ready False and Reconciling True since the claim
        assert {c.type: c.last_transition_time for c in status.conditions} == {
            "Ready": NOW,
            "Reconciling": NOW,
        }
    # Reasons and messages follow each write even when the status stays.
    assert summary(retrying)["Reconciling"] == (T, "Retrying")
    reconciling = next(c for c in retrying.conditions if c.type == "Reconciling")
    assert reconciling.message == "attempt 1 failed (IOError); next attempt at 12:02:20Z"
    # No generation given: the one last observed is kept.
    assert retrying.observed_generation == 1
    assert {c.observed_generation for c in retrying.conditions} == {1}

    assert summary(done) == {"Ready": (T, "Succeeded"), "Complete": (T, "Succeeded")}
    assert {c.type: c.last_transition_time for c in done.conditions} == {
        "Ready": done_at,
        "Complete": done_at,
    }
    assert done.observed_generation == 2
    assert [c.type for c in done.conditions] == ["Ready", "Complete"]  # Ready kept first


@pytest.mark.parametrize(
    ("spec", "status", "event", "reason"),
    [
        (
            make_spec(max_attempts=1),
            running(),
            AttemptFailed("E", "x", True, NOW),
            "AttemptsExhausted",
        ),
        (SPEC, running(), AttemptFailed("E", "x", False, NOW), "NotRetryable"),
        (
            make_spec(non_retryable=["acme.errors.Bad"]),
            running(),
            AttemptFailed("acme.errors.Bad", "x", True, NOW),
            "NotRetryable",
        ),
        (SPEC, running(), AttemptFailed("ResultTooLarge", "big", False, NOW), "NotRetryable"),
        (SPEC, running(), DeadlineExceeded(NOW), "DeadlineExceeded"),
        (SPEC, None, ParamsRejected("size: too big", NOW), "InvalidParams"),
    ],
    ids=[
        "no-attempts-left",
        "not-retryable",
        "listed-error",
        "result-too-large",
        "deadline",
        "params",
    ],
)
def test_a_failed_job_says_why(spec: Any, status: Any, event: Any, reason: str) -> None:
    result = transition(spec, status, event, generation=1)
    assert result.phase == JobPhase.FAILED
    assert summary(result) == {"Ready": (F, reason), "Stalled": (T, reason), "Failed": (T, reason)}


def test_failure_reason_without_an_error_is_plain() -> None:
    assert failure_reason(None) == "Failed"
    assert failure_reason(JobError(type="X", retryable=True)) == "AttemptsExhausted"


def test_with_conditions_drops_the_conditions_a_phase_no_longer_has() -> None:
    status = transition(SPEC, None, Claimed("w-1", NOW))
    status.phase = JobPhase.CANCELLED
    with_conditions(status, NOW, None)
    assert summary(status) == {"Ready": (F, "Cancelled"), "Stalled": (T, "Cancelled")}
    assert all(c.status != ConditionStatus.UNKNOWN for c in status.conditions)


# -- on the dispatcher's writes --------------------------------------------------------------


async def test_conditions_ride_on_the_two_writes_of_a_first_time_success(store, dispatcher, clock):
    submit(store, dispatcher, "a")
    w = worker()
    a = await claim_one(dispatcher, w)
    claimed = store.status("a")
    assert claimed["observedGeneration"] == 1
    assert {c["type"]: c["status"] for c in claimed["conditions"]} == {
        "Ready": "False",
        "Reconciling": "True",
    }

    # Someone edits the spec meanwhile: the next write has observed that generation.
    def edit(obj: dict[str, Any]) -> None:
        obj["spec"]["priority"] = 9
        obj["metadata"]["generation"] = 2

    dispatcher.observe(store.modify("a", edit))
    clock.advance(6)  # past the attempt's first progress interval
    await dispatcher.progress(w, a.attempt_id, ProgressReport(percent=50))
    assert store.status("a")["observedGeneration"] == 2
    assert {c["observedGeneration"] for c in store.status("a")["conditions"]} == {2}

    await dispatcher.complete(w, a.attempt_id, "done")
    done = store.status("a")
    assert {c["type"]: c["status"] for c in done["conditions"]} == {
        "Ready": "True",
        "Complete": "True",
    }
    assert store.status_writes == 3  # claimed, progress, succeeded: nothing added
