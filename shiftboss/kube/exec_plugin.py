"""Exec credential plugins: the command a kubeconfig user names (``aws eks get-token``,
``gke-gcloud-auth-plugin``, ``kubelogin``) to print an ``ExecCredential``.

The plugin runs through the ``kubernetes`` package's ``ExecProvider`` (which sets
``KUBERNETES_EXEC_INFO``, the plugin's env and cluster info), but is called here rather
than from the package's loader: the loader logs a failing plugin and carries on
anonymously, and re-runs a plugin whose token lives less than five minutes on every
request.  Blocking (a subprocess): ``CredentialCache`` calls it in a thread.
"""

from __future__ import annotations

import datetime as dt
import os

from kubernetes.config.config_exception import ConfigException
from kubernetes.config.exec_provider import ExecProvider
from kubernetes.config.kube_config import ConfigNode
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shiftboss.kube.credentials import (
    ClientCertificate,
    Credentials,
    KubeConfigError,
    renew_before,
)


class ExecCredentialStatus(BaseModel):
    """``status`` of the ``ExecCredential`` a plugin prints."""

    model_config = ConfigDict(extra="ignore")

    token: str | None = None
    client_certificate_data: str | None = Field(default=None, alias="clientCertificateData")
    client_key_data: str | None = Field(default=None, alias="clientKeyData")
    expiration_timestamp: dt.datetime | None = Field(default=None, alias="expirationTimestamp")


def run_exec_plugin(
    user: ConfigNode,
    cluster: ConfigNode | None,
    *,
    where: str,
    certificate: ClientCertificate | None = None,
) -> Credentials:
    """Run the ``exec`` plugin of the kubeconfig entry ``user`` (``{name, user: {exec}}``).

    ``certificate`` is the user's own client certificate, kept when the plugin gives none.
    """
    spec = user["user"]["exec"]
    command = " ".join([str(spec.value.get("command")), *map(str, spec.value.get("args") or [])])
    fix = f"run it by hand to see why, or fix users[{user.value.get('name')}].user.exec"
    # Relative to the file that defines the user, as kubectl resolves a relative command.
    cwd = os.path.dirname(user.path) if user.path else None
    try:
        raw = ExecProvider(spec, cwd, cluster).run()  # type: ignore[no-untyped-call]
        status = ExecCredentialStatus.model_validate(raw)
    except (ConfigException, OSError, ValidationError) as exc:
        detail = " ".join(str(exc).split())
        raise KubeConfigError(f"{where}: exec plugin `{command}` failed: {detail}; {fix}") from exc
    if status.client_certificate_data and status.client_key_data:
        certificate = ClientCertificate(
            status.client_certificate_data.encode(), status.client_key_data.encode()
        )
    elif not status.token:
        raise KubeConfigError(
            f"{where}: exec plugin `{command}` printed neither status.token nor "
            f"status.clientCertificateData with status.clientKeyData; {fix}"
        )
    expires = status.expiration_timestamp
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.UTC)
    return Credentials(
        authorization=f"Bearer {status.token}" if status.token else None,
        client_certificate=certificate,
        expires_at=expires,
        refresh_at=renew_before(expires, dt.datetime.now(dt.UTC)) if expires else None,
    )
