"""Test harness: a real local control plane (``LocalCluster``) whose pods run as
local processes on a ``ProcessNode``, pytest fixtures (``cluster``, ``namespace``,
``kube``) registered as the ``shiftboss`` pytest plugin, fault injection
(``shiftboss.testing.faults``: a proxy that drops, delays, hangs or answers for the
other side, and a frozen API server) and a Service stand-in (``service.ReadyService``)."""

from shiftboss.testing.cluster import (
    ClusterStartError,
    ExistingCluster,
    LocalCluster,
    find_binaries,
)
from shiftboss.testing.node import ProcessNode

__all__ = ["ClusterStartError", "ExistingCluster", "LocalCluster", "ProcessNode", "find_binaries"]
