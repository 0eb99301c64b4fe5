"""Operator settings, from ``shiftboss run`` flags (each has an environment variable)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OperatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Namespaces to serve; empty means cluster-wide.
    namespaces: list[str] = Field(default_factory=list)
    #: Address and port of the worker API (and /healthz, /readyz, /metrics).
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=0, le=65535)
    #: The URL workers use to reach the worker API (in a cluster: the operator's Service).
    worker_api_url: str | None = None
    #: A lease lasts this long after each heartbeat; a silent worker loses its jobs after it.
    lease_seconds: float = Field(15.0, gt=0, le=3600)
    #: Workers heartbeat this often; a third of the lease leaves room for two misses.
    heartbeat_seconds: float = Field(5.0, gt=0, le=1200)
    #: Run only while holding a Lease, so that several replicas can stand by.
    leader_elect: bool = False
    #: Namespace of that Lease (default: the kubeconfig's or the pod's namespace).
    leader_elect_namespace: str | None = None
    kubeconfig: str | None = None

    @field_validator("worker_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL that worker pods can reach")
        return value

    def advertised_url(self) -> str:
        if self.worker_api_url:
            return self.worker_api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"
