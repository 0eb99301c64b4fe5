"""`make demo`: a pool and its jobs watched to completion, on the local control plane.

Starts etcd, kube-apiserver, the controllers and a process node; installs the operator
with its Helm chart (two replicas as pods, under the chart's own RBAC, in a namespace
that enforces Pod Security ``restricted``); applies ``examples/pool.yaml`` and
``examples/jobs.yaml``; prints every job transition as it happens; cancels one job; kills
the leader's pod mid-job; then ``examples/holds.yaml`` with the ``shiftboss`` command: a
suspended job resumed, a finished job re-run and its timeline, a duplicate submission
that mirrors the first; and stops everything.
``SHIFTBOSS_DEMO_KEEP=1 make demo`` keeps the cluster up afterwards for kubectl.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from shiftboss.testing import LocalCluster
from shiftboss.testing.helm import Helm
from shiftboss.testing.processes import wait_until
from shiftboss.testing.up import EXAMPLE_IMAGES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
NAMESPACE = "shiftboss-demo"
SYSTEM = "shiftboss-system"
RESTRICTED = "pod-security.kubernetes.io/enforce=restricted"
#: Short leases so that the hand-over shows within seconds.
CHART_VALUES = {
    "operator": {"leaseSeconds": 10, "heartbeatSeconds": 2, "leaderElectLeaseSeconds": 6}
}
TERMINAL = {"Succeeded", "Failed", "Cancelled"}
CANCEL = "long-nap"


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')}  {message}", flush=True)


def pool_manifest() -> dict[str, Any]:
    pool: dict[str, Any] = yaml.safe_load((EXAMPLES / "pool.yaml").read_text())
    return pool


def jobs(cluster: LocalCluster) -> list[dict[str, Any]]:
    out = cluster.kubectl("-n", NAMESPACE, "get", "jobs.shiftboss.io", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def describe(status: dict[str, Any]) -> str:
    phase = status.get("phase")
    if phase == "Running":
        return f"attempt {status.get('attempt')} on {status.get('worker')}"
    if phase == "Succeeded":
        return f"result {json.dumps(status.get('result'))} in {status.get('duration')}"
    if phase in ("Failed", "Retrying", "Queued", "Cancelled"):
        return status.get("message") or ""
    return ""


def watch(cluster: LocalCluster, timeout: float = 180) -> list[dict[str, Any]]:
    seen: dict[str, str] = {}
    cancelled = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = jobs(cluster)
        for job in sorted(items, key=lambda j: j["metadata"]["name"]):
            name, status = job["metadata"]["name"], job.get("status", {})
            phase = status.get("phase") or "Pending"
            key = f"{phase}/{status.get('attempt', 0)}"
            if seen.get(name) != key:
                before = (seen.get(name) or "").split("/")[0] or "new"
                say(f"{name:<12} {before:>9} -> {phase:<9} {describe(status)}")
                seen[name] = key
            if name == CANCEL and phase == "Running" and not cancelled:
                say(
                    f'{name:<12} kubectl patch sbj/{name} --type=merge -p \'{{"spec":{{"cancel":true}}}}\''
                )
                cluster.kubectl(
                    "-n",
                    NAMESPACE,
                    "patch",
                    f"sbj/{name}",
                    "--type=merge",
                    "-p",
                    json.dumps({"spec": {"cancel": True}}),
                )
                cancelled = True
        if items and all(j.get("status", {}).get("phase") in TERMINAL for j in items):
            return items
        time.sleep(0.3)
    raise TimeoutError(f"jobs did not finish within {timeout:.0f}s")


def summary(cluster: LocalCluster, items: list[dict[str, Any]]) -> None:
    print()
    print(f"{'JOB':<12} {'SKILL':<8} {'PHASE':<10} {'ATTEMPTS':>8} {'DURATION':>9}  RESULT / ERROR")
    for job in sorted(items, key=lambda j: j["metadata"]["name"]):
        spec, status = job["spec"], job.get("status", {})
        outcome = (
            json.dumps(status.get("result"))
            if status.get("phase") == "Succeeded"
            else f"{status.get('error', {}).get('type', '')}: {status.get('error', {}).get('message', '')}"
            if status.get("error")
            else status.get("message", "")
        )
        print(
            f"{job['metadata']['name']:<12} {spec['skill']:<8} {status.get('phase', ''):<10} "
            f"{status.get('attempt', 0):>8} {status.get('duration') or '-':>9}  {outcome[:60]}"
        )
    counts: dict[str, int] = {}
    for job in items:
        phase = job["status"]["phase"]
        counts[phase] = counts.get(phase, 0) + 1
    print("\n" + ", ".join(f"{n} {p}" for p, n in sorted(counts.items())))
    print()
    print(cluster.kubectl("-n", NAMESPACE, "get", "workerpools,pods").stdout)


def install_operator(cluster: LocalCluster, workdir: Path) -> None:
    """``helm install`` of charts/shiftboss, as docs/install.md says, waiting until Ready."""
    for namespace in (SYSTEM, NAMESPACE):
        cluster.create_namespace(namespace)
        cluster.kubectl("label", "namespace", namespace, RESTRICTED)
    say(f"helm install shiftboss charts/shiftboss -n {SYSTEM} --wait  (namespaces: PSS restricted)")
    started = time.monotonic()
    Helm(cluster.kubeconfig, workdir / "helm").install("shiftboss", SYSTEM, CHART_VALUES)
    say(
        f"operator installed in {time.monotonic() - started:.0f}s: 2 replicas, "
        f"{leader(cluster)} leads; workers reach it at https://shiftboss.{SYSTEM}.svc:8000"
    )


def leader(cluster: LocalCluster) -> str:
    """The operator pod carrying the leader label (the worker API Service selects it)."""
    pods = cluster.get_json("-n", SYSTEM, "pods", "-l", "shiftboss.io/leader=true")["items"]
    names = [p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp")]
    return names[0] if len(names) == 1 else ""


def survive_a_crash(cluster: LocalCluster) -> None:
    """The leader's pod is killed mid-job: the standby takes the Lease over, the worker
    keeps its attempt and reports to the new leader through the Service; the job runs once."""
    job = {
        "apiVersion": "shiftboss.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "survivor"},
        "spec": {
            "pool": "demo",
            "skill": "sleep",
            "params": {"seconds": 8},
            "retry": {"maxAttempts": 1},
        },
    }
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=json.dumps(job))
    wait_until(
        lambda: job_status(cluster, "survivor").get("phase") == "Running",
        timeout=30,
        what="the survivor job to run",
    )
    old = leader(cluster)
    cluster.kubectl("-n", SYSTEM, "delete", "pod", old, "--grace-period=0", "--force")
    say(f"survivor is running; the leader's pod {old} was just killed (no grace)")

    def took_over() -> str | None:
        name = leader(cluster)
        return name if name and name != old else None

    new = wait_until(took_over, timeout=60, what="the standby to take the Lease over")
    say(f"{new} took over; the worker reconnects through the Service and reports")

    def finished() -> dict[str, Any] | None:
        status = job_status(cluster, "survivor")
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_until(finished, timeout=60, what="the survivor job to finish")
    assert status is not None
    say(
        f"survivor {status['phase']} on attempt {status['attempt']} "
        f"({len(status.get('attempts', []))} attempt in its history): it ran once"
    )


def shiftboss(cluster: LocalCluster, *args: str) -> str:
    """Run the ``shiftboss`` command (the kubectl plugin) against the demo's cluster."""
    say("$ shiftboss " + " ".join(args))
    command = [str(Path(sys.executable).with_name("shiftboss")), *args, "-n", NAMESPACE]
    done = subprocess.run(
        command, env=cluster.env(), capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.rstrip()


def wait_phase(cluster: LocalCluster, name: str, phase: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        status = job_status(cluster, name)
        return status if status.get("phase") == phase else None

    status = wait_until(reached, timeout=90, what=f"{name} to be {phase}")
    assert status is not None
    return status


def holds_and_reruns(cluster: LocalCluster) -> None:
    """Hold a job, run a finished one again, and submit one order twice (docs/lifecycle.md)."""
    cluster.kubectl("-n", NAMESPACE, "apply", "-f", str(EXAMPLES / "holds.yaml"))
    say("applied examples/holds.yaml: a job created suspended, one to re-run, one order twice")
    held = wait_phase(cluster, "nightly-report", "Suspended")
    say(f"nightly-report is Suspended: {held.get('message')}")
    print(shiftboss(cluster, "resume", "nightly-report"))
    done = wait_phase(cluster, "nightly-report", "Succeeded")
    say(f"nightly-report Succeeded after the resume: result {json.dumps(done.get('result'))}")

    wait_phase(cluster, "thumbnail", "Succeeded")
    print(shiftboss(cluster, "rerun", "thumbnail", "--wait", "--timeout", "60"))
    print(shiftboss(cluster, "timeline", "thumbnail"))

    first = wait_phase(cluster, "charge-order-9912", "Succeeded")
    second = wait_phase(cluster, "charge-order-9912-retry", "Succeeded")
    say(
        f"charge-order-9912-retry has the idempotencyKey of charge-order-9912: it mirrored it "
        f"({second.get('attempt')} attempts of its own, result {json.dumps(second.get('result'))}, "
        f"the first's is {json.dumps(first.get('result'))})"
    )


def job_status(cluster: LocalCluster, name: str) -> dict[str, Any]:
    status: dict[str, Any] = cluster.get_json("-n", NAMESPACE, "jobs.shiftboss.io", name).get(
        "status", {}
    )
    return status


def main() -> int:
    keep = os.environ.get("SHIFTBOSS_DEMO_KEEP") == "1"
    say(
        "starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, process node)"
    )
    # No CRDs (the chart brings them); the pool's image "loaded" from examples/.
    cluster = LocalCluster(keep_workdir=keep, images=EXAMPLE_IMAGES)
    try:
        cluster.start()
        say(
            f"control plane up in {cluster.start_seconds:.1f}s (Kubernetes "
            f"{json.loads(cluster.kubectl('version', '-o', 'json').stdout)['serverVersion']['gitVersion']})"
        )
        install_operator(cluster, Path(tempfile.mkdtemp(prefix="shiftboss-demo-")))
        cluster.kubectl("-n", NAMESPACE, "apply", "-f", "-", input=json.dumps(pool_manifest()))
        say("applied examples/pool.yaml: a pool of 3 workers, 2 jobs each at a time")
        cluster.kubectl("-n", NAMESPACE, "apply", "-f", str(EXAMPLES / "jobs.yaml"))
        say("applied examples/jobs.yaml: 9 jobs; watching them")
        items = watch(cluster)
        with contextlib.suppress(TimeoutError):  # let the pool's status catch up with the jobs
            wait_until(
                lambda: (
                    cluster.get_json("-n", NAMESPACE, "wp", "demo")
                    .get("status", {})
                    .get("busyWorkers")
                    == 0
                ),
                timeout=5,
                what="an idle pool",
            )
        summary(cluster, items)
        survive_a_crash(cluster)
        holds_and_reruns(cluster)
        if keep:
            print(
                f"The cluster stays up. In another terminal:\n"
                f"  export KUBECONFIG={cluster.kubeconfig}\n"
                f"  {cluster.bin_dir}/kubectl -n {NAMESPACE} get sbj,wp,pods\n"
                f"  {cluster.bin_dir}/kubectl -n {SYSTEM} logs deploy/shiftboss\n"
                "Press Ctrl-C here to stop everything."
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        else:
            print(
                "Everything is stopped now; `SHIFTBOSS_DEMO_KEEP=1 make demo` keeps the cluster up to explore."
            )
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
