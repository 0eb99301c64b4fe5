"""Worker configuration, read from ``SHIFTBOSS_*`` environment variables.

Every error names the variable at fault and how to fix it, so a misconfigured pod
says why in one log line instead of a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_TOKEN_FILE = "/var/run/secrets/shiftboss/token"

#: field name -> (environment variable, what a good value looks like)
ENV_VARS: dict[str, tuple[str, str]] = {
    "operator_url": (
        "SHIFTBOSS_OPERATOR_URL",
        "the operator's worker API URL, e.g. http://shiftboss.shiftboss-system.svc:8081",
    ),
    "pool": ("SHIFTBOSS_POOL", "the name of the WorkerPool this worker serves, e.g. resize"),
    "worker_id": (
        "SHIFTBOSS_WORKER_ID",
        "a lowercase DNS name (a-z, 0-9, '-', '.'), e.g. the pod name; defaults to the hostname",
    ),
    "token_file": (
        "SHIFTBOSS_TOKEN_FILE",
        "the path of a service-account token with audience 'shiftboss' "
        f"(default {DEFAULT_TOKEN_FILE}; outside a pod: kubectl create token ... > file)",
    ),
    "concurrency": ("SHIFTBOSS_CONCURRENCY", "an integer from 1 to 1024, e.g. 4"),
    "pod_ip": ("SHIFTBOSS_POD_IP", "an IP address to bind the health server to, e.g. 0.0.0.0"),
    "health_port": (
        "SHIFTBOSS_HEALTH_PORT",
        "a TCP port from 1 to 65535, or 0 to disable the health server",
    ),
    "log_format": ("SHIFTBOSS_LOG_FORMAT", "'json' or 'text'"),
    "log_level": ("SHIFTBOSS_LOG_LEVEL", "one of " + ", ".join(_LEVELS)),
    "drain_timeout_seconds": ("SHIFTBOSS_DRAIN_TIMEOUT_SECONDS", "a number of seconds >= 0"),
    "claim_wait_seconds": ("SHIFTBOSS_CLAIM_WAIT_SECONDS", "a number of seconds from 0 to 60"),
    "outcome_retry_seconds": (
        "SHIFTBOSS_OUTCOME_RETRY_SECONDS",
        "a number of seconds >= 0: how long to go on re-sending an outcome while the "
        "operator is away (default 900)",
    ),
    "ca_file": (
        "SHIFTBOSS_CA_FILE",
        "the path of a PEM bundle of the CA that signed the operator's certificate, "
        "with an https:// SHIFTBOSS_OPERATOR_URL; unset, the system's CAs are trusted",
    ),
    "ca_data": (
        "SHIFTBOSS_CA_DATA",
        "the PEM text of the CA bundle that signed the operator's certificate (the "
        "operator sets it from its --worker-ca-file), with an https:// SHIFTBOSS_OPERATOR_URL",
    ),
}


def ca_context(pem: str) -> ssl.SSLContext:
    """A client context that trusts only the CA certificates of ``pem`` (PEM text).

    ``ValueError`` says why the text is not a usable bundle.  The operator checks its
    ``--worker-ca-file`` with this too, so it never hands workers a CA they refuse.
    """
    if not pem.isascii() or "-----BEGIN CERTIFICATE-----" not in pem:
        raise ValueError("not a PEM CA bundle (it holds no PEM certificate)")
    try:
        return ssl.create_default_context(cadata=pem)
    except ssl.SSLError as exc:
        raise ValueError(f"not a PEM CA bundle ({exc.reason or exc})") from None


def default_worker_id() -> str:
    """The hostname made into a valid worker id (in a pod, the hostname is the pod name)."""
    name = re.sub(r"[^a-z0-9.-]+", "-", socket.gethostname().lower()).strip("-.")
    return name[:253] or "worker"


class WorkerConfig(BaseModel):
    """Settings of one worker process; build it with ``WorkerConfig.from_env()``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operator_url: str
    pool: str
    worker_id: str = Field(default_factory=default_worker_id)
    token_file: Path = Path(DEFAULT_TOKEN_FILE)
    concurrency: int = Field(default=1, ge=1, le=1024)
    pod_ip: str = "127.0.0.1"
    health_port: int = Field(default=8080, ge=0, le=65535)
    log_format: Literal["json", "text"] = "text"
    log_level: str = "INFO"
    drain_timeout_seconds: float = Field(default=30.0, ge=0)
    claim_wait_seconds: float = Field(default=20.0, ge=0, le=60)
    #: How long an outcome is re-sent while the operator does not answer it
    #: (docs/worker-protocol.md, "Outcomes").
    outcome_retry_seconds: float = Field(default=900.0, ge=0)
    #: Verify the operator's TLS certificate against this CA bundle (a file, or its text).
    ca_file: Path | None = None
    ca_data: str | None = None

    @field_validator("operator_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value.rstrip("/")

    @field_validator("pool", "worker_id")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if len(value) > 253 or not _NAME_RE.match(value):
            raise ValueError("must be a lowercase DNS name (a-z, 0-9, '-', '.')")
        return value

    @field_validator("pod_ip")
    @classmethod
    def _check_ip(cls, value: str) -> str:
        if value != "localhost":
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError("must be an IP address") from None
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LEVELS:
            raise ValueError("unknown log level")
        return level

    @model_validator(mode="after")
    def _one_ca_over_https(self) -> WorkerConfig:
        if self.ca_file is not None and self.ca_data is not None:
            raise ConfigError(
                "SHIFTBOSS_CA_FILE and SHIFTBOSS_CA_DATA are both set: give the operator's CA "
                "one way only (the operator sets SHIFTBOSS_CA_DATA when it has a "
                "--worker-ca-file: then remove SHIFTBOSS_CA_FILE from the pool's env)"
            )
        var = self._ca_variable()
        if var is not None and not self.operator_url.startswith("https://"):
            raise ConfigError(
                f"{var} is set but SHIFTBOSS_OPERATOR_URL={self.operator_url} is "
                f"not https://: use the operator's https:// URL, or unset {var}"
            )
        return self

    def _ca_variable(self) -> str | None:
        """The variable the operator's CA comes from, if any."""
        if self.ca_data is not None:
            return ENV_VARS["ca_data"][0]
        return ENV_VARS["ca_file"][0] if self.ca_file is not None else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerConfig:
        """Read the configuration; ``ConfigError`` names every variable at fault."""
        values: dict[str, str] = {}
        for field, (var, _hint) in ENV_VARS.items():
            raw = environ.get(var, "").strip()
            if raw:  # an empty variable means "use the default", as in most tools
                values[field] = raw
        problems = [
            f"{ENV_VARS[f][0]} is not set: set it to {ENV_VARS[f][1]}"
            for f in ("operator_url", "pool")
            if f not in values
        ]
        if problems:
            raise ConfigError("; ".join(problems))
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, values)) from None

    def read_token(self) -> str:
        """The current token. Re-read for every request: projected tokens rotate."""
        var = ENV_VARS["token_file"][0]
        try:
            token = self.token_file.read_text().strip()
        except FileNotFoundError:
            raise ConfigError(
                f"{var}={self.token_file}: no such file; mount a projected service-account "
                f"token there or set {var} to {ENV_VARS['token_file'][1]}"
            ) from None
        except OSError as exc:
            raise ConfigError(f"{var}={self.token_file}: cannot read it: {exc.strerror}") from None
        if not token:
            raise ConfigError(f"{var}={self.token_file}: the file is empty")
        return token

    def tls_verify(self) -> ssl.SSLContext | bool:
        """What the client verifies the operator's certificate with: the CA bundle of
        ``ca_data`` or ``ca_file``, or the system's CAs (True).  ``ConfigError`` names
        the variable."""
        if self.ca_data is not None:
            var, hint = ENV_VARS["ca_data"]
            try:
                return ca_context(self.ca_data)
            except ValueError as exc:
                raise ConfigError(f"{var}: {exc}; set it to {hint}") from None
        if self.ca_file is None:
            return True
        var, hint = ENV_VARS["ca_file"]
        try:
            pem = self.ca_file.read_bytes().decode("ascii", errors="replace")
        except FileNotFoundError:
            raise ConfigError(f"{var}={self.ca_file}: no such file; set it to {hint}") from None
        except OSError as exc:
            raise ConfigError(f"{var}={self.ca_file}: cannot read it: {exc.strerror}") from None
        try:
            return ca_context(pem)
        except ValueError as exc:
            raise ConfigError(f"{var}={self.ca_file}: {exc}; set it to {hint}") from None

    def untrusted_certificate(self, detail: str) -> str:
        """What to say when the operator's certificate fails verification."""
        if self.ca_data is not None:
            return (
                f"SHIFTBOSS_CA_DATA: the operator's certificate at {self.operator_url} is not "
                f"signed by it ({detail}); give the operator (--worker-ca-file) the CA bundle "
                "that signed its serving certificate"
            )
        if self.ca_file is not None:
            return (
                f"SHIFTBOSS_CA_FILE={self.ca_file}: the operator's certificate at "
                f"{self.operator_url} is not signed by it ({detail}); set SHIFTBOSS_CA_FILE "
                "to the CA bundle that signed the operator's serving certificate"
            )
        return (
            f"the operator's certificate at {self.operator_url} is not trusted by the "
            f"system's CAs ({detail}); set SHIFTBOSS_CA_FILE to the CA bundle that signed it"
        )


def _describe(exc: ValidationError, values: Mapping[str, str]) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        var, hint = ENV_VARS.get(field, (field, ""))
        shown = values.get(field, "")
        problems.append(f"{var}={shown!r} is invalid ({error['msg']}): set it to {hint}")
    return "; ".join(problems)
