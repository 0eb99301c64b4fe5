"""The Helm chart, installed as a user installs it: the operator runs as two pods under the
chart's own ServiceAccount and namespaced RBAC (a missing permission fails these tests),
worker pods reach the leader through the chart's Service by its DNS name over TLS (the
chart's default values), and everything runs in namespaces that enforce Pod Security
``restricted``.

One release serves the module; the tests run in file order and the last two change it
(upgrade, then uninstall).
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_support import (
    Cluster,
    apply,
    explain_repeats,
    job_manifest,
    jobs,
    leader_pods,
    operator_logs,
    operator_pods,
    operator_values,
    pool_manifest,
    restricted_namespace,
    wait_succeeded,
)

from shiftboss.testing.helm import CHART, Helm
from shiftboss.testing.processes import wait_until

RELEASE = "shiftboss"
#: What the API server answers a request the RBAC rules do not allow.
FORBIDDEN = re.compile(r"forbidden|\b403\b", re.IGNORECASE)


class Installed:
    def __init__(self, system: str, work: str) -> None:
        self.system, self.work = system, work


@pytest.fixture(scope="module")
def installed(target: Cluster, helm: Helm, image_tag: str | None) -> Iterator[Installed]:
    system = restricted_namespace(target, "shiftboss-system")
    work = restricted_namespace(target, "team-a")
    values = operator_values(image_tag, rbac={"scope": "namespaced"}, watchNamespaces=[work])
    helm.install(RELEASE, system, values)
    yield Installed(system, work)
    # Whatever the tests left: the release (if still there), then the namespaces.
    helm.run("uninstall", RELEASE, "-n", system, "--wait", check=False)
    for namespace in (work, system):
        target.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_install_runs_jobs_in_restricted_namespaces(
    target: Cluster, installed: Installed, image_tag: str | None
) -> None:
    deployment = target.get_json("-n", installed.system, "deployment", RELEASE)
    assert deployment["status"].get("availableReplicas") == 2, deployment["status"]
    pods = operator_pods(target, installed.system)
    assert {p["spec"]["serviceAccountName"] for p in pods} == {RELEASE}
    wait_until(
        lambda: len(leader_pods(target, installed.system)) == 1,
        timeout=60,
        what="exactly one operator pod labelled leader",
    )

    apply(target, installed.work, pool_manifest(image_tag, "yaml"))
    apply(
        target,
        installed.work,
        *(job_manifest(f"add-{i}", "yaml", "add", {"a": i, "b": 1}) for i in range(8)),
        job_manifest("parse", "yaml", "parse_yaml", {"text": "replicas: 3\n"}),
    )
    done = wait_succeeded(target, installed.work, 9)
    results = {j["metadata"]["name"]: j["status"].get("result") for j in done}
    assert results["add-5"] == 6 and results["parse"] == {"replicas": 3}, results

    # The worker pods the operator made were admitted by the restricted namespace, and
    # were given the operator's CA instead of an http:// URL.
    workers = target.get_json("-n", installed.work, "pods", "-l", "shiftboss.io/pool=yaml")["items"]
    assert workers, "no worker pods"
    env = {e["name"]: e.get("value", "") for e in workers[0]["spec"]["containers"][0]["env"]}
    # The chart's default URL: the Service's DNS name, which the certificate names.
    assert env["SHIFTBOSS_OPERATOR_URL"] == f"https://{RELEASE}.{installed.system}.svc:8000"
    assert "BEGIN CERTIFICATE" in env["SHIFTBOSS_CA_DATA"]
    logs = operator_logs(target, installed.system)
    assert not FORBIDDEN.search(logs), logs[-4000:]


def test_operator_rights_are_least_privilege(target: Cluster, installed: Installed) -> None:
    """The chart's ServiceAccount can do what the operator does, and nothing it does not."""
    account = f"system:serviceaccount:{installed.system}:{RELEASE}"

    def can(*args: str) -> bool:
        out = target.kubectl("auth", "can-i", *args, f"--as={account}", check=False)
        return out.stdout.strip() == "yes"

    assert can("create", "pods", "-n", installed.work)
    assert can("patch", "jobs.shiftboss.io", "--subresource=status", "-n", installed.work)
    assert can("create", "tokenreviews.authentication.k8s.io")
    # Namespaced mode: nothing in a namespace it does not serve, nothing cluster-wide
    # beyond reviews, and no Secrets anywhere.
    other = target.create_namespace(f"unserved-{uuid.uuid4().hex[:6]}")
    try:
        assert not can("list", "jobs.shiftboss.io", "-n", other)
        assert not can("create", "pods", "-n", other)
    finally:
        target.kubectl("delete", "namespace", other, "--wait=false", check=False)
    assert not can("list", "jobs.shiftboss.io", "--all-namespaces")
    assert not can("list", "nodes")
    assert not can("get", "secrets", "-n", installed.work)
    # Worker pods' own ServiceAccount gets no API rights from the chart.
    worker = f"system:serviceaccount:{installed.work}:default"
    out = target.kubectl(
        "auth", "can-i", "list", "pods", "-n", installed.work, f"--as={worker}", check=False
    )
    assert out.stdout.strip() == "no"


def test_leader_pod_killed_while_jobs_run_loses_no_job(
    target: Cluster, installed: Installed
) -> None:
    before = {j["metadata"]["name"] for j in jobs(target, installed.work)}
    count = 24
    apply(
        target,
        installed.work,
        *(job_manifest(f"sleep-{i}", "yaml", "sleep", {"seconds": 2}) for i in range(count)),
    )

    def some_running() -> bool:
        return any(
            j.get("status", {}).get("phase") == "Running" for j in jobs(target, installed.work)
        )

    wait_until(some_running, timeout=60, what="a sleep job to run")
    (leader,) = leader_pods(target, installed.system)
    target.kubectl("-n", installed.system, "delete", "pod", leader, "--grace-period=0", "--force")

    wait_until(
        lambda: [p for p in leader_pods(target, installed.system) if p != leader],
        timeout=90,
        what="another replica to take over and label its pod",
    )
    done = wait_succeeded(target, installed.work, len(before) + count, timeout=240)
    sleeps = [j for j in done if j["metadata"]["name"].startswith("sleep-")]
    assert len(sleeps) == count
    assert all(j["status"]["phase"] == "Succeeded" for j in sleeps)
    # The workers kept their attempts through the hand-over: none ran twice.
    repeated = [j for j in sleeps if j["status"]["attempt"] != 1]
    assert not repeated, explain_repeats(target, installed.system, installed.work, repeated)


def _chart_with_new_printer_column(tmp_path: Path) -> Path:
    """A copy of the chart whose WorkerPool CRD shows one more column."""
    chart = tmp_path / "shiftboss"
    shutil.copytree(CHART, chart)
    path = chart / "files" / "crds" / "shiftboss.io_workerpools.yaml"
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    for version in crd["spec"]["versions"]:
        version.setdefault("additionalPrinterColumns", []).append(
            {"name": "E2E-Upgraded", "type": "string", "jsonPath": ".spec.app", "priority": 1}
        )
    path.write_text(yaml.safe_dump(crd, sort_keys=False))
    return chart


def test_upgrade_rolls_the_operator_and_delivers_a_changed_crd_mid_run(
    target: Cluster, installed: Installed, helm: Helm, image_tag: str | None, tmp_path: Path
) -> None:
    """``helm upgrade`` while jobs run, with a changed CRD and a changed operator setting
    (the pod template changes, so both replicas are replaced one at a time): the CRD
    change reaches the cluster and no running job is lost or run twice."""
    before = {j["metadata"]["name"] for j in jobs(target, installed.work)}
    count = 16
    apply(
        target,
        installed.work,
        *(job_manifest(f"during-{i}", "yaml", "sleep", {"seconds": 2}) for i in range(count)),
    )
    wait_until(
        lambda: any(
            j.get("status", {}).get("phase") == "Running" for j in jobs(target, installed.work)
        ),
        timeout=60,
        what="a job to run before the upgrade",
    )
    old_pods = {p["metadata"]["name"] for p in operator_pods(target, installed.system)}
    values = operator_values(
        image_tag,
        rbac={"scope": "namespaced"},
        watchNamespaces=[installed.work],
        # A new setting: a new pod template, so the Deployment rolls.
        operator={"leaderElectLeaseSeconds": 6, "leaseSeconds": 20},
    )
    chart = _chart_with_new_printer_column(tmp_path)
    helm.install(RELEASE, installed.system, values, chart=chart, upgrade=True)

    crd = target.get_json("crd", "workerpools.shiftboss.io")
    columns = [c["name"] for c in crd["spec"]["versions"][0].get("additionalPrinterColumns", [])]
    assert "E2E-Upgraded" in columns
    wait_until(
        lambda: (
            not old_pods & {p["metadata"]["name"] for p in operator_pods(target, installed.system)}
        ),
        timeout=120,
        what="both operator replicas to be replaced",
    )
    done = wait_succeeded(target, installed.work, len(before) + count, timeout=240)
    during = [j for j in done if j["metadata"]["name"].startswith("during-")]
    assert len(during) == count
    repeated = [j for j in during if j["status"]["attempt"] != 1]
    assert not repeated, explain_repeats(target, installed.system, installed.work, repeated)
    # The upgraded release runs new jobs too.
    apply(target, installed.work, job_manifest("after-upgrade", "yaml", "add", {"a": 2, "b": 2}))
    wait_succeeded(target, installed.work, len(before) + count + 1, timeout=120)


def test_uninstall_keeps_crds_and_user_objects(
    target: Cluster, installed: Installed, helm: Helm
) -> None:
    helm.uninstall(RELEASE, installed.system)
    assert (
        target.kubectl(
            "get", "crd", "jobs.shiftboss.io", "workerpools.shiftboss.io", check=False
        ).returncode
        == 0
    )
    assert target.get_json("-n", installed.work, "workerpools.shiftboss.io", "yaml")
    assert len(jobs(target, installed.work)) >= 9
    wait_until(
        lambda: not operator_pods(target, installed.system), timeout=60, what="operator pods gone"
    )
    gone = target.kubectl(
        "-n",
        installed.system,
        "get",
        "deployment,service,role,serviceaccount",
        "-o",
        "name",
        check=False,
    )
    assert RELEASE not in gone.stdout, gone.stdout
