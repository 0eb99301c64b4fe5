"""`make demo`: a local control plane, a pod run to completion, its status and log."""

from __future__ import annotations

import json
import sys
import time

from shiftboss.testing import LocalCluster
from shiftboss.testing.processes import wait_until

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "hello", "namespace": "default"},
    "spec": {
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "main",
                "image": "python:3.11",
                "command": [
                    sys.executable,
                    "-c",
                    "import os; print('hello from', os.environ['POD'], 'at', os.environ['IP'])",
                ],
                "env": [
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                ],
            }
        ],
    },
}


def main() -> None:
    print(
        "starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, process node)"
    )
    with LocalCluster() as cluster:
        print(f"  up in {cluster.start_seconds:.1f}s; kubeconfig {cluster.kubeconfig}")
        print(cluster.kubectl("get", "nodes", "-o", "wide").stdout)
        cluster.kubectl("apply", "-f", "-", input=json.dumps(POD))
        started = time.monotonic()

        def finished():
            pod = json.loads(cluster.kubectl("get", "pod", "hello", "-o", "json").stdout)
            phase = pod.get("status", {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        phase = wait_until(finished, timeout=60, what="the pod to finish")
        print(f"pod hello: {phase} in {time.monotonic() - started:.1f}s")
        print(cluster.kubectl("get", "pod", "hello", "-o", "wide").stdout)
        print("log:", cluster.kubectl("logs", "hello").stdout)
    print("everything stopped")


if __name__ == "__main__":
    main()
