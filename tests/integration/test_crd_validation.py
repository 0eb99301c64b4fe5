"""What the API server does with the Shiftboss CRDs, with no operator running.

Invalid Jobs and WorkerPools are refused with a message that names the field and
says what is wrong (a field of one form says the form in words, never a regex), and a
refused request changes nothing; the API server fills in the defaults, which ``kubectl
explain`` states; short names, the ``shiftboss`` category, selectable
fields, printer columns and the scale subresource work as the CRDs declare them.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from shiftboss.testing.processes import wait_until

API_VERSION = "shiftboss.io/v1alpha1"
JOBS = "jobs.shiftboss.io"
POOLS = "workerpools.shiftboss.io"
RESOURCE = {"Job": JOBS, "WorkerPool": POOLS}


# --- helpers -------------------------------------------------------------------------


def job_manifest(name: str = "j", **spec: Any) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"pool": "p", "skill": "resize", **spec},
    }


def pool_manifest(name: str = "p", **spec: Any) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": {"image": "registry.example.com/resize-worker:1.4.0", "app": "app:worker", **spec},
    }


def without(manifest: dict, *path: str) -> dict:
    """A copy of ``manifest`` with the key at ``path`` (e.g. "spec", "pool") removed."""
    result = copy.deepcopy(manifest)
    node = result
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return result


def apply(cluster, namespace: str, manifest: dict, check: bool = True):
    return cluster.kubectl(
        "-n", namespace, "apply", "-f", "-", input=json.dumps(manifest), check=check
    )


def get(cluster, namespace: str, kind: str, name: str) -> dict:
    out = cluster.kubectl("-n", namespace, "get", RESOURCE[kind], name, "-o", "json").stdout
    return json.loads(out)


def assert_refused(result: subprocess.CompletedProcess, phrases: tuple[str, ...]) -> None:
    """The command failed and its stderr (what the user sees) holds every phrase, and
    no regex: a field of one form is refused with the form in words."""
    assert result.returncode != 0, f"accepted, but should be refused:\n{result.stdout}"
    message = " ".join(result.stderr.split())
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in the error:\n{result.stderr}"
    assert "should match" not in message, result.stderr


def assert_not_found(cluster, namespace: str, kind: str, name: str) -> None:
    result = cluster.kubectl("-n", namespace, "get", RESOURCE[kind], name, check=False)
    assert result.returncode != 0, f"{kind} {name} was created:\n{result.stdout}"
    assert "NotFound" in result.stderr, result.stderr


def names(cluster, namespace: str, *args: str) -> set[str]:
    out = cluster.kubectl("-n", namespace, "get", *args, "-o", "name").stdout
    return set(out.split())


def flat(text: str) -> str:
    return " ".join(text.split())


# --- 1. creations the API server refuses ---------------------------------------------


@dataclass(frozen=True)
class Refused:
    manifest: dict
    phrases: tuple[str, ...]
    marks: tuple = field(default=())


def missing_rule(reason: str) -> tuple:
    return (pytest.mark.xfail(strict=True, reason=f"CRD is missing a rule: {reason}"),)


PLACEHOLDER_NAMES = {"bad-job", "bad-pool", "u"}


def _job(**spec: Any) -> dict:
    return job_manifest("bad-job", **spec)


def _pool(**spec: Any) -> dict:
    return pool_manifest("bad-pool", **spec)


CREATE_CASES = {
    # Job
    "job-without-spec": Refused(without(_job(), "spec"), ("spec: Required value",)),
    "job-missing-pool": Refused(without(_job(), "spec", "pool"), ("spec.pool: Required value",)),
    "job-missing-skill": Refused(without(_job(), "spec", "skill"), ("spec.skill: Required value",)),
    "job-priority-above-10": Refused(
        _job(priority=11), ("spec.priority", "should be less than or equal to 10")
    ),
    "job-priority-negative": Refused(
        _job(priority=-1), ("spec.priority", "should be greater than or equal to 0")
    ),
    "job-timeout-negative": Refused(
        _job(timeoutSeconds=-5), ("spec.timeoutSeconds", "should be greater than or equal to 1")
    ),
    "job-timeout-zero": Refused(
        _job(timeoutSeconds=0), ("spec.timeoutSeconds", "should be greater than or equal to 1")
    ),
    "job-deadline-below-timeout": Refused(
        _job(timeoutSeconds=600, activeDeadlineSeconds=60),
        (
            "spec.activeDeadlineSeconds",
            "must be greater than or equal to spec.timeoutSeconds",
        ),
    ),
    "job-retry-max-attempts-0": Refused(
        _job(retry={"maxAttempts": 0}),
        ("spec.retry.maxAttempts", "should be greater than or equal to 1"),
    ),
    "job-backoff-max-below-initial": Refused(
        _job(retry={"backoff": {"initialDelaySeconds": 60, "maxDelaySeconds": 10}}),
        (
            "spec.retry.backoff.maxDelaySeconds",
            "must be greater than or equal to initialDelaySeconds",
        ),
    ),
    "job-backoff-max-below-default-initial": Refused(
        # initialDelaySeconds defaults to 1: the rule sees the defaulted value.
        _job(retry={"backoff": {"maxDelaySeconds": 0}}),
        (
            "spec.retry.backoff.maxDelaySeconds",
            "must be greater than or equal to initialDelaySeconds",
        ),
    ),
    "job-backoff-jitter-above-1": Refused(
        _job(retry={"backoff": {"jitter": 1.5}}),
        ("spec.retry.backoff.jitter", "should be less than or equal to 1"),
    ),
    "job-backoff-factor-below-1": Refused(
        _job(retry={"backoff": {"factor": 0.5}}),
        ("spec.retry.backoff.factor", "should be greater than or equal to 1"),
    ),
    "job-pool-not-a-dns-label": Refused(
        _job(pool="Bad_Pool"),
        (
            'spec.pool: Invalid value: "Bad_Pool": must be a DNS-1123 label: at most 63 '
            "lowercase letters, digits and '-', starting and ending with a letter or digit "
            "(for example resize-pool)",
        ),
    ),
    "job-skill-bad-name": Refused(
        _job(skill="1resize!"),
        ('spec.skill: Invalid value: "1resize!": must be a skill name: a letter or',),
    ),
    "job-params-a-string": Refused(
        _job(params="size=2"), ("spec.params", 'must be of type object: "string"')
    ),
    "job-params-a-list": Refused(
        _job(params=[1, 2]), ("spec.params", 'must be of type object: "array"')
    ),
    "job-unknown-field": Refused(_job(prioritty=3), ('unknown field "spec.prioritty"',)),
    "job-ttl-negative": Refused(
        _job(ttlSecondsAfterFinished=-1),
        ("spec.ttlSecondsAfterFinished", "should be greater than or equal to 0"),
    ),
    "job-run-generation-negative": Refused(
        _job(runGeneration=-1),
        ("spec.runGeneration", "should be greater than or equal to 0"),
    ),
    "job-run-generation-huge": Refused(
        _job(runGeneration=1000001),
        ("spec.runGeneration", "should be less than or equal to 1000000"),
    ),
    "job-suspend-a-string": Refused(
        _job(suspend="yes"), ("spec.suspend", 'must be of type boolean: "string"')
    ),
    # WorkerPool
    "pool-missing-image": Refused(
        without(_pool(), "spec", "image"), ("spec.image: Required value",)
    ),
    "pool-missing-app": Refused(without(_pool(), "spec", "app"), ("spec.app: Required value",)),
    "pool-app-not-module-attr": Refused(
        _pool(app="app.worker"),
        (
            'spec.app: Invalid value: "app.worker": must be module:attribute (a dotted '
            "module path, ':' and an attribute path, for example demo_worker:worker)",
        ),
    ),
    "pool-app-empty-attr": Refused(
        _pool(app="app:"), ('spec.app: Invalid value: "app:": must be module:attribute',)
    ),
    "pool-app-too-short": Refused(_pool(app="a:"), ("spec.app", "at least 3 chars long")),
    "pool-service-account-not-a-name": Refused(
        _pool(serviceAccountName="Resize_Worker"),
        ('spec.serviceAccountName: Invalid value: "Resize_Worker": must be a DNS-1123 subdomain',),
    ),
    "pool-replicas-negative": Refused(
        _pool(replicas=-1), ("spec.replicas", "should be greater than or equal to 0")
    ),
    "pool-replicas-above-1000": Refused(
        _pool(replicas=1001), ("spec.replicas", "should be less than or equal to 1000")
    ),
    "pool-concurrency-0": Refused(
        _pool(concurrency=0), ("spec.concurrency", "should be greater than or equal to 1")
    ),
    "pool-env-value-and-valueFrom": Refused(
        _pool(
            env=[
                {
                    "name": "PW",
                    "value": "hunter2",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}},
                }
            ]
        ),
        ("spec.env[0]", "env[].value and env[].valueFrom are mutually exclusive"),
    ),
    "pool-env-duplicate-name": Refused(
        _pool(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        ("spec.env[1]", "Duplicate value"),
    ),
    "pool-env-name-with-equals": Refused(
        _pool(env=[{"name": "A=B", "value": "1"}]),
        ("spec.env[0].name", "must be an environment variable name: printable ASCII"),
    ),
    "pool-env-reserved-name": Refused(
        _pool(env=[{"name": "LOG_LEVEL", "value": "debug"}, {"name": "SHIFTBOSS_OPERATOR_URL"}]),
        (
            "spec.env[1].name: Forbidden: SHIFTBOSS_OPERATOR_URL is set by the operator on "
            "every worker",
            "remove it from spec.env",
        ),
    ),
    "pool-env-reserved-name-from-a-secret": Refused(
        _pool(
            env=[
                {"name": "SHIFTBOSS_POOL", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
            ]
        ),
        ("spec.env[0].name: Forbidden: SHIFTBOSS_POOL is set by the operator",),
    ),
    "pool-bad-resource-quantity": Refused(
        _pool(resources={"requests": {"cpu": "lots"}}),
        ('spec.resources.requests[cpu]: Invalid value: "lots": must be a quantity: a number',),
    ),
    "pool-bad-limit-unit": Refused(
        _pool(resources={"limits": {"memory": "1GB"}}),
        ("spec.resources.limits[memory]", "for example 500m, 1Gi or 2"),
    ),
    "pool-drain-timeout-negative": Refused(
        _pool(drainTimeoutSeconds=-1),
        ("spec.drainTimeoutSeconds", "should be greater than or equal to 0"),
    ),
    "pool-name-not-a-dns-label": Refused(
        pool_manifest("pool.one"),
        ("metadata.name", "must be a DNS-1123 label"),
    ),
    "pool-name-longer-than-63": Refused(
        pool_manifest("p" * 64),
        ("metadata.name", "must be a DNS-1123 label"),
    ),
    "pool-negative-cpu-request": Refused(
        _pool(resources={"requests": {"cpu": "-500m"}}),
        ("spec.resources.requests[cpu]", "must be a quantity"),
    ),
    "pool-negative-integer-limit": Refused(
        _pool(resources={"limits": {"cpu": -1}}),
        ("spec.resources.limits.cpu", "greater than or equal to 0"),
    ),
    # A rule a user would expect (the Pods the operator creates from the pool would be
    # refused), but which the CRD does not have: the pool is accepted.
    "pool-request-above-limit": Refused(
        _pool(resources={"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}),
        ("spec.resources", "memory"),
        marks=missing_rule(
            "no rule compares requests with limits: a request above its limit is accepted, "
            "and only the worker pods are refused later"
        ),
    ),
    "pool-env-valueFrom-misspelt-source": Refused(
        _pool(env=[{"name": "PW", "valueFrom": {"secretKeyRf": {"name": "s", "key": "pw"}}}]),
        ("spec.env[0].valueFrom.secretKeyRf",),
    ),
    "pool-env-valueFrom-two-sources": Refused(
        _pool(
            env=[
                {
                    "name": "PW",
                    "valueFrom": {
                        "secretKeyRef": {"name": "s", "key": "pw"},
                        "fieldRef": {"fieldPath": "metadata.name"},
                    },
                }
            ]
        ),
        ("spec.env[0].valueFrom", "exactly one of secretKeyRef"),
    ),
}


@pytest.fixture(scope="module")
def shared_namespace(cluster) -> Iterator[str]:
    """One namespace for the table-driven cases: each case uses its own object names."""
    name = f"t-crd-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def named_after(case_id: str, manifest: dict) -> dict:
    """``manifest`` with the placeholder names bad-job / bad-pool / u replaced by the id."""
    manifest = copy.deepcopy(manifest)
    if manifest["metadata"]["name"] in PLACEHOLDER_NAMES:
        manifest["metadata"]["name"] = case_id.lower()
    return manifest


@pytest.mark.parametrize(
    ("case_id", "case"),
    [pytest.param(i, c, id=i, marks=c.marks) for i, c in CREATE_CASES.items()],
)
def test_invalid_object_is_refused_and_not_created(
    cluster, shared_namespace, case_id: str, case: Refused
):
    manifest = named_after(case_id, case.manifest)
    result = apply(cluster, shared_namespace, manifest, check=False)
    assert_refused(result, case.phrases)
    assert_not_found(cluster, shared_namespace, manifest["kind"], manifest["metadata"]["name"])


def test_valid_objects_are_accepted(cluster, namespace):
    """The control of the table above: the base manifests (and edge values) are valid,
    and stored as they were sent."""
    apply(cluster, namespace, pool_manifest("p"))
    edge_pool = pool_manifest(
        "edge",
        replicas=0,
        concurrency=1024,
        drainTimeoutSeconds=0,
        paused=False,
        app="acme.jobs.resize:worker.main",
        serviceAccountName="resize.worker-1",
        env=[
            {"name": "A", "value": "1"},
            # A worker_runtime setting, not one the operator sets: the user's to set.
            {"name": "SHIFTBOSS_OUTCOME_RETRY_SECONDS", "value": "60"},
            {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {
                "name": "C",
                "value": "",
                "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
            },
        ],
        resources={"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"cpu": 2}},
    )
    apply(cluster, namespace, edge_pool)
    assert get(cluster, namespace, "WorkerPool", "edge")["spec"] == edge_pool["spec"]
    apply(cluster, namespace, job_manifest("j"))
    edge_job = job_manifest(
        "edge",
        pool="resize-pool",
        skill="_images.resize-v2",
        priority=10,
        timeoutSeconds=60,
        activeDeadlineSeconds=60,
        params={"size": [1, 2], "nested": {"x": 1.5, "y": [True, "z"]}},
        retry={
            "maxAttempts": 1,
            "backoff": {"initialDelaySeconds": 5, "factor": 2, "maxDelaySeconds": 5, "jitter": 1},
        },
        cancel=False,
        suspend=True,
        runGeneration=1000000,
    )
    apply(cluster, namespace, edge_job)
    assert get(cluster, namespace, "Job", "edge")["spec"] == edge_job["spec"]
    assert names(cluster, namespace, JOBS) == {
        "job.shiftboss.io/j",
        "job.shiftboss.io/edge",
    }
    assert names(cluster, namespace, POOLS) == {
        "workerpool.shiftboss.io/p",
        "workerpool.shiftboss.io/edge",
    }


# --- 1b. updates the API server refuses ----------------------------------------------


@dataclass(frozen=True)
class RefusedUpdate:
    manifest: dict
    command: tuple[str, ...]  # after "kubectl -n NS"; NAME is replaced by the object's name
    phrases: tuple[str, ...]
    body: dict | list | None = None  # the -p of a patch, or the changed object of a replace


def patch(resource: str, patch_type: str, body: Any) -> tuple[str, ...]:
    return ("patch", resource, "NAME", "--type", patch_type, "-p", json.dumps(body))


UPDATE_CASES = {
    "job-change-pool": RefusedUpdate(
        job_manifest("u"),
        patch(JOBS, "merge", {"spec": {"pool": "other"}}),
        ("spec.pool", "spec.pool is immutable"),
    ),
    "job-change-pool-by-replace": RefusedUpdate(
        job_manifest("u"),
        ("replace", "-f", "-"),
        ("spec.pool", "spec.pool is immutable"),
        body=job_manifest("u", pool="other"),
    ),
    "job-change-skill": RefusedUpdate(
        job_manifest("u"),
        patch(JOBS, "merge", {"spec": {"skill": "crop"}}),
        ("spec.skill", "spec.skill is immutable"),
    ),
    "job-change-params": RefusedUpdate(
        job_manifest("u", params={"size": 1}),
        patch(JOBS, "merge", {"spec": {"params": {"size": 2}}}),
        ("spec.params", "spec.params is immutable"),
    ),
    "job-add-param": RefusedUpdate(
        job_manifest("u"),
        patch(JOBS, "merge", {"spec": {"params": {"size": 2}}}),
        ("spec.params", "spec.params is immutable"),
    ),
    "job-uncancel": RefusedUpdate(
        job_manifest("u", cancel=True),
        patch(JOBS, "merge", {"spec": {"cancel": False}}),
        ("spec.cancel", "cannot go back from true to false"),
    ),
    "job-uncancel-by-removing-the-field": RefusedUpdate(
        # The removed field is defaulted to false again, and the transition rule sees it.
        job_manifest("u", cancel=True),
        patch(JOBS, "json", [{"op": "remove", "path": "/spec/cancel"}]),
        ("spec.cancel", "cannot go back from true to false"),
    ),
    "job-update-priority-out-of-range": RefusedUpdate(
        job_manifest("u"),
        patch(JOBS, "merge", {"spec": {"priority": 42}}),
        ("spec.priority", "should be less than or equal to 10"),
    ),
    "pool-update-concurrency-0": RefusedUpdate(
        pool_manifest("u"),
        patch(POOLS, "merge", {"spec": {"concurrency": 0}}),
        ("spec.concurrency", "should be greater than or equal to 1"),
    ),
    "pool-add-reserved-env": RefusedUpdate(
        pool_manifest("u", env=[{"name": "A", "value": "1"}]),
        patch(POOLS, "merge", {"spec": {"env": [{"name": "SHIFTBOSS_POOL", "value": "other"}]}}),
        ("spec.env[0].name: Forbidden: SHIFTBOSS_POOL is set by the operator",),
    ),
    "pool-scale-above-1000": RefusedUpdate(
        pool_manifest("u"),
        ("scale", f"{POOLS}/NAME", "--replicas=1001"),
        ("spec.replicas", "should be less than or equal to 1000"),
    ),
}


@pytest.mark.parametrize(
    ("case_id", "case"), [pytest.param(i, c, id=i) for i, c in UPDATE_CASES.items()]
)
def test_invalid_update_is_refused_and_changes_nothing(
    cluster, shared_namespace, case_id: str, case: RefusedUpdate
):
    manifest = named_after(case_id, case.manifest)
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    apply(cluster, shared_namespace, manifest)
    before = get(cluster, shared_namespace, kind, name)
    command = [arg.replace("NAME", name) for arg in case.command]
    body = named_after(case_id, case.body) if case.body is not None else None
    result = cluster.kubectl(
        "-n",
        shared_namespace,
        *command,
        input=json.dumps(body) if body is not None else None,
        check=False,
    )
    assert_refused(result, case.phrases)
    after = get(cluster, shared_namespace, kind, name)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_mutable_fields_can_change(cluster, namespace):
    """The control of the update table: the rules refuse only what they should."""
    apply(cluster, namespace, job_manifest("u", params={"size": 1}))
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        JOBS,
        "u",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"priority": 9, "cancel": True, "params": {"size": 1}}}),
    )
    job = get(cluster, namespace, "Job", "u")
    assert job["spec"]["priority"] == 9
    assert job["spec"]["cancel"] is True
    assert job["spec"]["params"] == {"size": 1}


# --- 2. defaults ----------------------------------------------------------------------


def test_minimal_job_gets_its_defaults_from_the_api_server(cluster, namespace):
    apply(cluster, namespace, job_manifest("minimal"))
    spec = get(cluster, namespace, "Job", "minimal")["spec"]
    assert spec["priority"] == 5
    assert spec["retry"]["maxAttempts"] == 3
    assert spec["retry"]["backoff"] == {
        "initialDelaySeconds": 1,
        "factor": 2,
        "maxDelaySeconds": 300,
        "jitter": 0.1,
    }
    assert spec["cancel"] is False
    assert spec["params"] == {}
    assert "timeoutSeconds" not in spec
    assert "activeDeadlineSeconds" not in spec


def test_minimal_pool_gets_its_defaults_from_the_api_server(cluster, namespace):
    apply(cluster, namespace, pool_manifest("minimal"))
    spec = get(cluster, namespace, "WorkerPool", "minimal")["spec"]
    assert spec["replicas"] == 1
    assert spec["concurrency"] == 1
    assert spec["drainTimeoutSeconds"] == 60
    assert spec["paused"] is False
    assert spec["serviceAccountName"] == "default"


# --- 3. kubectl explain ---------------------------------------------------------------


def explain(cluster, path: str) -> str:
    # The OpenAPI document of a new CRD is published a moment after it is established.
    def answered():
        result = cluster.kubectl("explain", path, check=False)
        return flat(result.stdout) if result.returncode == 0 else None

    return wait_until(answered, timeout=30, what=f"kubectl explain {path}")


def test_explain_job_retry(cluster):
    text = explain(cluster, "sbjob.spec.retry")
    assert "GROUP: shiftboss.io" in text
    assert "KIND: Job" in text
    assert "Retry policy of failed attempts." in text
    for field_name in ("maxAttempts", "backoff", "nonRetryableErrors"):
        assert field_name in text
    assert "Total number of attempts, the first included (1 = never retry)." in text


def test_explain_pool_drain_timeout(cluster):
    text = explain(cluster, "wp.spec.drainTimeoutSeconds")
    assert "KIND: WorkerPool" in text
    assert "FIELD: drainTimeoutSeconds <integer>" in text
    assert "How long a busy worker may keep running its jobs after it is asked to stop" in text
    assert text.endswith("Defaults to 60.")


def test_explain_states_the_defaults(cluster):
    text = explain(cluster, "workerpool.spec.replicas")
    assert "FIELD: replicas <integer>" in text
    assert "0 keeps the pool defined but runs no worker. Defaults to 1." in text
    assert explain(cluster, "wp.spec.serviceAccountName").endswith('Defaults to "default".')
    retry = explain(cluster, "sbj.spec.retry")
    assert "Retry policy of failed attempts. Defaults to {}, so that each of its fields" in retry
    assert "are not counted. Defaults to 3." in retry  # maxAttempts, listed under FIELDS
    assert "Defaults to" not in explain(cluster, "sbj.spec.timeoutSeconds")  # none: no limit


# --- 4. short names and category ------------------------------------------------------


def test_short_names_and_category(cluster, namespace):
    apply(cluster, namespace, pool_manifest("p"))
    apply(cluster, namespace, job_manifest("j"))
    for short in ("sbj", "sbjob"):
        assert names(cluster, namespace, short) == {"job.shiftboss.io/j"}
    assert names(cluster, namespace, "wp") == {"workerpool.shiftboss.io/p"}
    assert names(cluster, namespace, "shiftboss") == {
        "job.shiftboss.io/j",
        "workerpool.shiftboss.io/p",
    }


def test_kubectl_get_jobs_still_means_batch_jobs(cluster, namespace):
    apply(cluster, namespace, job_manifest("sb-job"))
    cluster.kubectl("-n", namespace, "create", "job", "batch-job", "--image=busybox", "--", "true")
    assert names(cluster, namespace, "jobs") == {"job.batch/batch-job"}
    assert names(cluster, namespace, "job") == {"job.batch/batch-job"}
    assert names(cluster, namespace, JOBS) == {"job.shiftboss.io/sb-job"}
    assert "batch-job" not in names(cluster, namespace, "shiftboss")


# --- 5. selectable fields -------------------------------------------------------------


def set_phase(cluster, namespace: str, name: str, phase: str) -> None:
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        JOBS,
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": phase}}),
    )


def test_field_selectors_on_phase_and_pool(cluster, namespace):
    apply(cluster, namespace, job_manifest("a"))
    apply(cluster, namespace, job_manifest("b"))
    apply(cluster, namespace, job_manifest("c", pool="other", skill="crop"))
    set_phase(cluster, namespace, "a", "Failed")
    set_phase(cluster, namespace, "b", "Succeeded")

    def selected(selector: str) -> set[str]:
        return names(cluster, namespace, "sbj", "--field-selector", selector)

    assert selected("status.phase=Failed") == {"job.shiftboss.io/a"}
    assert selected("status.phase=Succeeded") == {"job.shiftboss.io/b"}
    assert selected("status.phase!=Failed") == {"job.shiftboss.io/b", "job.shiftboss.io/c"}
    assert selected("spec.pool=other") == {"job.shiftboss.io/c"}
    assert selected("spec.pool=p") == {"job.shiftboss.io/a", "job.shiftboss.io/b"}
    assert selected("spec.skill=crop") == {"job.shiftboss.io/c"}
    assert selected("spec.pool=p,status.phase=Succeeded") == {"job.shiftboss.io/b"}


def test_unselectable_field_is_refused(cluster, namespace):
    result = cluster.kubectl(
        "-n", namespace, "get", "sbj", "--field-selector", "spec.priority=5", check=False
    )
    assert_refused(result, ("field label not supported: spec.priority",))


def test_status_is_a_subresource(cluster, namespace):
    """A status in the main resource is ignored; the status subresource validates it."""
    manifest = job_manifest("s")
    manifest["status"] = {"phase": "Succeeded"}
    apply(cluster, namespace, manifest)
    assert get(cluster, namespace, "Job", "s").get("status", {}).get("phase") is None
    result = cluster.kubectl(
        "-n",
        namespace,
        "patch",
        JOBS,
        "s",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"phase": "Done"}}),
        check=False,
    )
    assert_refused(result, ("status.phase", "Unsupported value", '"Done"'))


def test_status_condition_type_is_refused_in_words(cluster, namespace):
    apply(cluster, namespace, job_manifest("c"))
    condition = {
        "type": "not ready",
        "status": "True",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    result = cluster.kubectl(
        "-n",
        namespace,
        "patch",
        JOBS,
        "c",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [condition]}}),
        check=False,
    )
    assert_refused(
        result,
        ('status.conditions[0].type: Invalid value: "not ready": must be a condition type',),
    )


# --- 6. printer columns ---------------------------------------------------------------


def table(cluster, namespace: str, *args: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows (by column name) of ``kubectl get``'s table output."""
    lines = cluster.kubectl("-n", namespace, "get", *args).stdout.splitlines()
    columns = [(m.group(), m.start()) for m in re.finditer(r"\S+", lines[0])]
    rows = []
    for line in lines[1:]:
        row = {}
        for index, (name, start) in enumerate(columns):
            end = columns[index + 1][1] if index + 1 < len(columns) else None
            row[name] = line[start:end].strip()
        rows.append(row)
    return [name for name, _ in columns], rows


def test_job_printer_columns(cluster, namespace):
    apply(cluster, namespace, job_manifest("j", priority=7))
    set_phase(cluster, namespace, "j", "Running")
    columns, rows = table(cluster, namespace, "sbj")
    assert columns == ["NAME", "POOL", "SKILL", "PHASE", "ATTEMPTS", "AGE", "DURATION"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["NAME"], row["POOL"], row["SKILL"], row["PHASE"]) == ("j", "p", "resize", "Running")
    assert row["ATTEMPTS"] == "0"  # status.attempt is defaulted to 0 by the status schema
    assert row["DURATION"] == ""
    columns, rows = table(cluster, namespace, "sbj", "-o", "wide")
    assert columns[7:] == ["PRIORITY", "WORKER", "MESSAGE"]
    assert rows[0]["PRIORITY"] == "7"


def test_pool_printer_columns(cluster, namespace):
    apply(cluster, namespace, pool_manifest("p", replicas=3))
    columns, rows = table(cluster, namespace, "wp")
    assert columns == ["NAME", "DESIRED", "READY", "BUSY", "QUEUED", "AGE"]
    assert len(rows) == 1
    assert (rows[0]["NAME"], rows[0]["DESIRED"]) == ("p", "3")
    columns, rows = table(cluster, namespace, "wp", "-o", "wide")
    assert columns[6:] == ["RUNNING", "PAUSED", "IMAGE"]
    assert rows[0]["PAUSED"] == "false"
    assert rows[0]["IMAGE"] == "registry.example.com/resize-worker:1.4.0"


# --- 7. scale subresource -------------------------------------------------------------


def test_kubectl_scale_sets_spec_replicas(cluster, namespace):
    apply(cluster, namespace, pool_manifest("p", replicas=1))
    out = cluster.kubectl("-n", namespace, "scale", "wp/p", "--replicas=4").stdout
    assert "scaled" in out
    pool = get(cluster, namespace, "WorkerPool", "p")
    assert pool["spec"]["replicas"] == 4
    assert pool["metadata"]["generation"] == 2
    assert pool.get("status", {}).get("replicas") is None  # no operator wrote a status
    scale = json.loads(
        cluster.kubectl(
            "get",
            "--raw",
            f"/apis/shiftboss.io/v1alpha1/namespaces/{namespace}/workerpools/p/scale",
        ).stdout
    )
    assert scale["kind"] == "Scale"
    assert scale["apiVersion"] == "autoscaling/v1"
    assert scale["spec"]["replicas"] == 4
    assert scale["status"]["replicas"] == 0
    assert re.fullmatch(r"\d+", scale["metadata"]["resourceVersion"])
