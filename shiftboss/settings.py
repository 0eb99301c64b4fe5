"""Operator settings, from ``shiftboss run`` flags (each has an environment variable)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from worker_runtime.config import ca_context

#: A DNS-1123 label, as Kubernetes names namespaces.
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


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
    #: After a restart or hand-over, restored attempts keep their lease this long, so
    #: that their workers reconnect before any can expire.  Unset: twice the lease.
    restore_grace_seconds: float | None = Field(None, gt=0, le=3600)
    #: A cancelled or timed-out attempt's skill gets this long to stop before the runtime
    #: cancels it; the operator fences the attempt a heartbeat and this grace later.
    cancel_grace_seconds: float = Field(5.0, ge=0, le=600)
    #: Aging: a waiting job counts one priority level higher per this many seconds it is
    #: older than another (docs/scheduling.md).  At most a day: ten levels are then ten
    #: days, strict priority in practice, and virtual times stay exact as floats.
    aging_seconds_per_level: float = Field(60.0, gt=0, le=86400, allow_inf_nan=False)
    #: Serve the worker API over TLS with this certificate and key (PEM files).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    #: A PEM CA bundle every worker verifies the worker API's certificate with: its text
    #: goes to the worker pods as SHIFTBOSS_CA_DATA.
    worker_ca_file: str | None = None
    #: Run only while holding a Lease, so that several replicas can stand by.
    leader_elect: bool = False
    #: Namespace of that Lease (default: the kubeconfig's or the pod's namespace).
    leader_elect_namespace: str | None = None
    #: Standbys take over after the leader has not renewed its Lease for this long.
    leader_elect_lease_seconds: float = Field(15.0, ge=2, le=600)
    #: This operator's shard: the holder of its namespaces' claim Leases, shared by its
    #: replicas.  Unset: the namespace of the leader Lease (see ``shiftboss.shards``).
    shard: str | None = None
    #: Another shard takes over a claim unchanged for this long; the operator stops when
    #: it could not renew its claims for two thirds of it.
    shard_lease_seconds: float = Field(60.0, ge=2, le=3600)
    #: Run the event loop on uvloop (faster I/O); off only to rule it out.
    uvloop: bool = True
    kubeconfig: str | None = None

    @field_validator("shard")
    @classmethod
    def _dns_label(cls, value: str | None) -> str | None:
        if value is not None and not (len(value) <= 63 and DNS_LABEL.fullmatch(value)):
            raise ValueError(
                "must be a DNS-1123 label: at most 63 lower-case letters, digits and '-', "
                "starting and ending with a letter or digit (e.g. shard-a)"
            )
        return value

    @field_validator("worker_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL that worker pods can reach")
        return value

    @field_validator("worker_ca_file")
    @classmethod
    def _ca_bundle(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        try:
            ca_context(Path(value).read_bytes().decode("ascii", errors="replace"))
        except OSError as exc:
            raise ValueError(f"cannot read it: {exc.strerror}") from None
        # Workers verify only over https: a CA for an http:// URL would stop every one.
        url = info.data.get("worker_api_url") or (
            "https://" if info.data.get("tls_cert_file") else "http://"
        )
        if not url.startswith("https://"):
            raise ValueError(
                "workers verify the worker API with it over https only: serve TLS "
                "(--tls-cert-file) or advertise an https:// --worker-api-url"
            )
        return value

    def worker_ca_data(self) -> str | None:
        """The PEM text of ``worker_ca_file`` (checked when the settings were made)."""
        return Path(self.worker_ca_file).read_text() if self.worker_ca_file else None

    @model_validator(mode="after")
    def _tls_pair(self) -> OperatorSettings:
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        return self

    @property
    def restore_grace(self) -> float:
        return self.restore_grace_seconds or 2 * self.lease_seconds

    def advertised_url(self) -> str:
        if self.worker_api_url:
            return self.worker_api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        scheme = "https" if self.tls_cert_file else "http"
        return f"{scheme}://{host}:{self.port}"
