"""The process node: runs the pods bound to it as local processes (see ``agent``)."""

from shiftboss.testing.node.agent import ProcessNode

__all__ = ["ProcessNode"]
