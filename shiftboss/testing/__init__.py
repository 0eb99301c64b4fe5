"""Test harness: a real local control plane (``LocalCluster``) whose pods run as
local processes on a ``ProcessNode``, plus pytest fixtures (``cluster``,
``namespace``, ``kube``) registered as the ``shiftboss`` pytest plugin."""

from shiftboss.testing.cluster import (
    ClusterStartError,
    ExistingCluster,
    LocalCluster,
    find_binaries,
)
from shiftboss.testing.node import ProcessNode

__all__ = ["ClusterStartError", "ExistingCluster", "LocalCluster", "ProcessNode", "find_binaries"]
