"""The worker registry: ids bound to identities, limits per pool and identity, shared skills."""

from __future__ import annotations

import pytest

from shiftboss.workers.limits import LimitExceeded, RegistrationLimits
from shiftboss.workers.registry import WorkerIdTaken, WorkerRegistry
from worker_runtime.protocol import RegisterRequest, SkillSpec

POD_A = "pod:ns/uid-a"
POD_B = "pod:ns/uid-b"
SA_1 = "sa:ns/one"
SA_2 = "sa:ns/two"


def request(worker_id: str, pool: str = "demo", schema: dict | None = None) -> RegisterRequest:
    skill = SkillSpec(name="echo", input_schema=schema or {"type": "object"})
    return RegisterRequest(pool=pool, worker_id=worker_id, skills=[skill])


def registry(**limits: int) -> WorkerRegistry:
    return WorkerRegistry(forget_after_seconds=60, limits=RegistrationLimits(**limits))


def test_an_id_belongs_to_the_identity_that_registered_it():
    workers = registry()
    workers.register("ns", request("w1"), SA_1)
    with pytest.raises(WorkerIdTaken, match="SHIFTBOSS_WORKER_ID"):
        workers.register("ns", request("w1"), SA_2)
    info = workers.get("ns", "w1")
    assert info is not None and info.owner == SA_1
    # The same identity may register again (after an operator restart, say).
    assert workers.register("ns", request("w1"), SA_1).owner == SA_1
    # The same id in another namespace is another worker.
    assert workers.register("other", request("w1"), SA_2).owner == SA_2


def test_a_pod_registering_its_own_name_wins_over_a_squatter():
    workers = registry()
    workers.register("ns", request("demo-abc12", pool="theirs"), SA_1)  # squatted first
    info = workers.register("ns", request("demo-abc12"), POD_A)
    assert (info.owner, info.pool) == (POD_A, "demo")
    with pytest.raises(WorkerIdTaken):  # and the squatter cannot take it back
        workers.register("ns", request("demo-abc12", pool="theirs"), SA_1)
    # A replacement pod of the same name (a new uid) takes over too.
    assert workers.register("ns", request("demo-abc12"), POD_B).owner == POD_B


def test_a_re_registration_by_the_same_identity_keeps_its_last_claim():
    workers = registry()
    first = workers.register("ns", request("w1"), SA_1)
    first.last_claim, first.claim_seq = ("r1", ["uid.1"]), 3
    again = workers.register("ns", request("w1"), SA_1)
    assert (again.last_claim, again.claim_seq) == (("r1", ["uid.1"]), 3)
    taken = workers.register("ns", request("w1"), POD_A)
    assert (taken.last_claim, taken.claim_seq) == (None, 0)


def test_workers_per_pool_are_limited():
    workers = registry(max_workers_per_pool=2)
    workers.register("ns", request("w1"), POD_A)
    workers.register("ns", request("w2"), POD_B)
    with pytest.raises(LimitExceeded) as refused:
        workers.register("ns", request("w3"), "pod:ns/uid-c")
    assert (refused.value.status, refused.value.code) == (409, "worker_limit")
    assert "pool 'demo'" in refused.value.message
    workers.register("ns", request("w2"), POD_B)  # re-registering is not a new worker
    workers.register("ns", request("w3", pool="other"), "pod:ns/uid-c")  # another pool


def test_worker_ids_per_service_account_are_limited():
    workers = registry(max_ids_per_service_account=2)
    workers.register("ns", request("w1"), SA_1)
    workers.register("ns", request("w2", pool="other"), SA_1)
    with pytest.raises(LimitExceeded, match="ns/one"):
        workers.register("ns", request("w3"), SA_1)
    workers.register("ns", request("w3"), SA_2)  # another identity has room
    workers.remove("ns", "w1")
    workers.register("ns", request("w4"), SA_1)  # a forgotten worker frees its id


def test_identical_skills_are_kept_once():
    workers = registry()
    big = {"type": "object", "description": "x" * 10_000}
    one = workers.register("ns", request("w1", schema=big), POD_A)
    two = workers.register("ns", request("w2", schema=dict(big)), POD_B)
    assert one.skills["echo"] is two.skills["echo"]
    other = workers.register("ns", request("w3", schema={"type": "string"}), "pod:ns/c")
    assert other.skills["echo"] is not one.skills["echo"]


def test_may_run_follows_registrations_removals_and_re_registrations():
    workers = registry()
    assert not workers.may_run("ns", "demo", "echo")
    workers.register("ns", request("w1"), POD_A)
    workers.register("ns", request("w2"), POD_B)
    assert workers.may_run("ns", "demo", "echo")
    assert not workers.may_run("ns", "other-pool", "echo")
    assert not workers.may_run("other-ns", "demo", "echo")
    workers.remove("ns", "w1")
    assert workers.may_run("ns", "demo", "echo")  # w2 still offers it
    workers.register("ns", request("w2", pool="other-pool"), POD_B)  # moved pools
    assert not workers.may_run("ns", "demo", "echo")
    assert workers.may_run("ns", "other-pool", "echo")


def test_just_after_a_start_any_skill_may_still_be_offered():
    warming = WorkerRegistry(forget_after_seconds=60, warmup_seconds=60)
    assert warming.may_run("ns", "demo", "anything")  # its workers may be re-registering
