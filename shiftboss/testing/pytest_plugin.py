"""pytest fixtures for testing against a real control plane (registered as a plugin).

- ``cluster`` (session): a ``LocalCluster`` with a process node, started once; or,
  when ``SHIFTBOSS_KUBECONFIG`` is set, that existing cluster (kind or any other).
- ``namespace``: a fresh namespace per test, deleted afterwards.
- ``kube``: an async ``KubeClient`` for the cluster.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from shiftboss.kube import KubeClient, KubeConfig
from shiftboss.testing.cluster import ExistingCluster, LocalCluster


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "shiftboss_crds",
        "CRD files or directories to install in the test cluster",
        type="paths",
        default=[],
    )


@pytest.fixture(scope="session")
def cluster(pytestconfig: pytest.Config) -> Iterator[LocalCluster | ExistingCluster]:
    crds = list(pytestconfig.getini("shiftboss_crds"))
    existing = os.environ.get("SHIFTBOSS_KUBECONFIG")
    if existing:
        remote = ExistingCluster(existing)
        for path in crds:
            remote.kubectl("apply", "--server-side", "-f", str(path))
        yield remote
        return
    local = LocalCluster(crds=crds)
    with local:
        print(f"\nlocal control plane up in {local.start_seconds:.1f}s (logs: {local.logs})")
        yield local


@pytest.fixture
def namespace(cluster: LocalCluster | ExistingCluster) -> Iterator[str]:
    name = cluster.create_namespace(f"t-{uuid.uuid4().hex[:10]}")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
async def kube(cluster: LocalCluster | ExistingCluster) -> AsyncIterator[KubeClient]:
    async with KubeClient(KubeConfig.from_file(cluster.kubeconfig)) as client:
        yield client
