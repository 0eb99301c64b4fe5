"""The end-to-end suite: the operator installed as users install it (the Helm chart, the
kustomize base), running as pods under its own ServiceAccount and RBAC, serving worker
pods through its Service.

Against the local control plane by default (a cluster of its own, without the CRDs, which
the chart installs), or against any cluster with ``SHIFTBOSS_KUBECONFIG`` (``make
e2e-kind`` builds the images, loads them into kind and sets ``SHIFTBOSS_E2E_IMAGE_TAG``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from shiftboss.testing.cluster import ExistingCluster, LocalCluster
from shiftboss.testing.helm import Helm
from shiftboss.testing.up import EXAMPLE_IMAGES

Cluster = LocalCluster | ExistingCluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def target() -> Iterator[Cluster]:
    """The cluster under test: a fresh local control plane, or ``SHIFTBOSS_KUBECONFIG``'s."""
    existing = os.environ.get("SHIFTBOSS_KUBECONFIG")
    if existing:
        yield ExistingCluster(existing)
        return
    # No CRDs (the chart brings them); the example images loaded as `make local-cluster` does.
    with LocalCluster(images=EXAMPLE_IMAGES) as local:
        yield local


@pytest.fixture(scope="session")
def image_tag() -> str | None:
    return os.environ.get("SHIFTBOSS_E2E_IMAGE_TAG")


@pytest.fixture(scope="session")
def helm(target: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(target.kubeconfig, tmp_path_factory.mktemp("helm-home"))
