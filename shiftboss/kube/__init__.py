"""A small typed async client for the Kubernetes API (httpx), used by the operator's
dispatcher and by the local control plane harness.  Kopf keeps its own client for
watching; this one does the writes that need optimistic concurrency."""

from shiftboss.kube.client import ApiError, KubeClient
from shiftboss.kube.config import KubeConfig, KubeConfigError

__all__ = ["ApiError", "KubeClient", "KubeConfig", "KubeConfigError"]
