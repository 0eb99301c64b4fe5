"""Connection settings for the Kubernetes API: from a kubeconfig file or in-cluster."""

from __future__ import annotations

import base64
import os
import ssl
import tempfile
from pathlib import Path

import yaml
from pydantic import BaseModel

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeConfigError(Exception):
    """The kubeconfig is missing or unusable; the message says which part and why."""


class KubeConfig(BaseModel):
    server: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    namespace: str = "default"
    insecure: bool = False

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> KubeConfig:
        """``path``, else ``$KUBECONFIG``, else in-cluster, else ``~/.kube/config``."""
        if path:
            return cls.from_file(path)
        if os.environ.get("KUBECONFIG"):
            return cls.from_file(os.environ["KUBECONFIG"].split(os.pathsep)[0])
        if os.environ.get("KUBERNETES_SERVICE_HOST") and (IN_CLUSTER_DIR / "token").exists():
            return cls.in_cluster()
        return cls.from_file(Path.home() / ".kube" / "config")

    @classmethod
    def in_cluster(cls) -> KubeConfig:
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        host = f"[{host}]" if ":" in host else host
        return cls(
            server=f"https://{host}:{port}",
            ca_file=str(IN_CLUSTER_DIR / "ca.crt"),
            token_file=str(IN_CLUSTER_DIR / "token"),
            namespace=(IN_CLUSTER_DIR / "namespace").read_text().strip(),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], context: str | None = None) -> KubeConfig:
        path = Path(path)
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise KubeConfigError(f"cannot read kubeconfig {path}: {exc.strerror}") from exc
        base = path.parent
        context = context or doc.get("current-context")
        ctx = _named(doc, "contexts", context, path)["context"]
        cluster = _named(doc, "clusters", ctx["cluster"], path)["cluster"]
        user = _named(doc, "users", ctx["user"], path)["user"] if ctx.get("user") else {}

        def file_or_data(key: str, section: dict) -> str | None:
            if section.get(f"{key}-data"):
                return _materialise(base64.b64decode(section[f"{key}-data"]))
            if section.get(key):
                return str((base / section[key]).resolve())
            return None

        return cls(
            server=cluster["server"],
            ca_file=file_or_data("certificate-authority", cluster),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            cert_file=file_or_data("client-certificate", user),
            key_file=file_or_data("client-key", user),
            token=user.get("token"),
            token_file=str((base / user["tokenFile"]).resolve()) if user.get("tokenFile") else None,
            namespace=ctx.get("namespace") or "default",
        )

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file and self.key_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def bearer_token(self) -> str | None:
        # Re-read every time: projected service-account tokens rotate on disk.
        if self.token_file:
            return Path(self.token_file).read_text().strip()
        return self.token


def _named(doc: dict, section: str, name: str | None, path: Path) -> dict:
    for item in doc.get(section) or []:
        if item.get("name") == name:
            return item
    raise KubeConfigError(f"kubeconfig {path}: no entry named {name!r} in {section}")


def _materialise(data: bytes) -> str:
    """ssl wants file paths; write inline credentials to a private temp file."""
    fd, name = tempfile.mkstemp(prefix="shiftboss-kube-", suffix=".pem")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return name
