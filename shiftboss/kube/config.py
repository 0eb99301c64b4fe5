"""Where the Kubernetes API server is and how to authenticate to it.

Kubeconfigs (``KUBECONFIG`` paths merged, contexts, token files, client certificates,
auth providers, ``proxy-url``, ``tls-server-name``) and in-cluster credentials are read
by the ``kubernetes`` package's own loaders; ``KubeConfig`` translates what they load
into what the async HTTP clients need (an SSL context, headers, a proxy) and keeps the
credentials fresh (``CredentialCache``).  Exec credential plugins run in ``exec_plugin``
(the package's loader is shown the users without them).
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes.client import Configuration
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)
from kubernetes.config.kube_config import ConfigNode, KubeConfigLoader, KubeConfigMerger
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shiftboss.kube.credentials import (
    ClientCertificate,
    CredentialCache,
    Credentials,
    CredentialSource,
    KubeConfigError,
)
from shiftboss.kube.exec_plugin import run_exec_plugin

__all__ = ["Impersonation", "KubeConfig", "KubeConfigError"]

IN_CLUSTER_NAMESPACE_FILE = Path(SERVICE_TOKEN_FILENAME).parent / "namespace"
#: Token files (``tokenFile``, projected service-account tokens) rotate on disk; they are
#: re-read this often, as client-go does.  Auth-provider tokens are re-checked as often.
TOKEN_FILE_PERIOD = dt.timedelta(minutes=1)
#: Characters allowed as they are in an ``Impersonate-Extra-`` header name (the rest are
#: percent-encoded, as client-go does).
_HEADER_NAME_SAFE = "!#$&'*+-.^_`|~"


class Impersonation(BaseModel):
    """The kubeconfig user's ``as``, ``as-uid``, ``as-groups`` and ``as-user-extra``:
    act as another user (the API server checks the ``impersonate`` permission)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user: str | None = Field(default=None, alias="as")
    uid: str | None = Field(default=None, alias="as-uid")
    groups: tuple[str, ...] = Field(default=(), alias="as-groups")
    extra: dict[str, tuple[str, ...]] = Field(default_factory=dict, alias="as-user-extra")

    def headers(self) -> list[tuple[str, str]]:
        """``Impersonate-*`` request headers (the ``kubernetes`` package sends none)."""
        headers = [("Impersonate-User", self.user)] if self.user else []
        if self.uid:
            headers.append(("Impersonate-Uid", self.uid))
        headers += [("Impersonate-Group", group) for group in self.groups]
        for key, values in self.extra.items():
            name = "Impersonate-Extra-" + urllib.parse.quote(key, safe=_HEADER_NAME_SAFE)
            headers += [(name, value) for value in values]
        return headers


class KubeConfig:
    """The API server's address, how to verify it, and whom to authenticate as.

    Build one with ``load()``, ``from_file()``, ``from_files()`` or ``in_cluster()``.
    Loading may run an exec credential plugin (a subprocess): do it before the event
    loop starts, or in a thread.  One ``KubeConfig`` may serve several clients; they share
    its credentials and its SSL context.
    """

    def __init__(
        self,
        *,
        server: str,
        fetch: CredentialSource,
        credentials: Credentials,
        namespace: str = "default",
        ca_file: str | None = None,
        insecure: bool = False,
        tls_server_name: str | None = None,
        proxy: str | None = None,
        impersonation: Impersonation | None = None,
    ) -> None:
        self.server, self.namespace = server, namespace
        self.ca_file, self.insecure = ca_file, insecure
        self.tls_server_name, self.proxy = tls_server_name, proxy
        self.impersonation = impersonation or Impersonation()
        self._ssl: ssl.SSLContext | None = None
        self.credentials = CredentialCache(fetch, credentials, on_change=self._credentials_changed)

    # -- loading ----------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> KubeConfig:
        """``path``, else the ``KUBECONFIG`` files (merged), else in-cluster (in a pod),
        else ``~/.kube/config``."""
        if path:
            return cls.from_file(path)
        if os.environ.get("KUBECONFIG"):
            return cls.from_files(os.environ["KUBECONFIG"].split(os.pathsep))
        if os.environ.get("KUBERNETES_SERVICE_HOST") and Path(SERVICE_TOKEN_FILENAME).exists():
            return cls.in_cluster()
        return cls.from_file(Path.home() / ".kube" / "config")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], context: str | None = None) -> KubeConfig:
        """One kubeconfig file, which must exist."""
        if not Path(path).expanduser().is_file():
            raise KubeConfigError(
                f"cannot read kubeconfig {path}: no such file; pass an existing kubeconfig "
                "(--kubeconfig) or set KUBECONFIG"
            )
        return cls.from_files([path], context)

    @classmethod
    def from_files(
        cls, paths: Sequence[str | os.PathLike[str]], context: str | None = None
    ) -> KubeConfig:
        """Kubeconfig files merged as kubectl merges ``KUBECONFIG``: the first file that
        defines a name wins, missing files are skipped."""
        files = [str(Path(p).expanduser()) for p in paths if str(p)]
        existing = [f for f in files if Path(f).exists()]
        if not existing:
            raise KubeConfigError(
                f"cannot read kubeconfig {os.pathsep.join(files)}: no such file; pass an "
                "existing kubeconfig (--kubeconfig) or set KUBECONFIG"
            )
        where = "kubeconfig " + os.pathsep.join(existing)
        try:
            merger = KubeConfigMerger(os.pathsep.join(existing))  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise KubeConfigError(f"cannot read kubeconfig {exc.filename}: {exc.strerror}") from exc
        except (yaml.YAMLError, ConfigException) as exc:
            raise KubeConfigError(f"{where} is not a valid kubeconfig: {exc}") from exc
        # kubectl takes the current-context of the first file that sets one (the package
        # the last): the operator must pick the cluster kubectl shows.
        current = next(
            (
                doc["current-context"]
                for doc in merger.config_files.values()
                if doc.get("current-context")
            ),
            None,
        )
        return _KubeconfigUser(merger.config, context or current, where).config()

    @classmethod
    def in_cluster(cls) -> KubeConfig:
        """The pod's service account: the token file is re-read as the kubelet rotates it."""

        def fetch() -> Credentials:
            return _credentials(_in_cluster_configuration(), refresh=True)

        configuration = _in_cluster_configuration()
        namespace = (
            IN_CLUSTER_NAMESPACE_FILE.read_text().strip()
            if IN_CLUSTER_NAMESPACE_FILE.exists()
            else "default"
        )
        return cls(
            server=configuration.host,
            ca_file=configuration.ssl_ca_cert,
            namespace=namespace,
            fetch=fetch,
            credentials=_credentials(configuration, refresh=True),
        )

    # -- what the HTTP clients use ----------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """One SSL context for every client of this config; a client certificate that the
        credentials renew is loaded into it, so new connections present the new one."""
        if self._ssl is None:
            context = ssl.create_default_context(cafile=self.ca_file)
            if self.insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            certificate = self.credentials.current.client_certificate
            if certificate is not None:
                _load_client_certificate(context, certificate)
            self._ssl = context
        return self._ssl

    def _credentials_changed(self, credentials: Credentials) -> None:
        if self._ssl is not None and credentials.client_certificate is not None:
            _load_client_certificate(self._ssl, credentials.client_certificate)


class _KubeconfigUser:
    """The context, cluster and user chosen from merged kubeconfig files."""

    def __init__(self, merged: ConfigNode, context: str | None, where: str) -> None:
        self.where = where
        doc: dict[str, Any] = merged.value
        contexts = [c.value for c in doc.get("contexts") or []]
        self.context_name = context or doc.get("current-context")
        if not self.context_name:
            raise KubeConfigError(
                f"{where}: no current-context; choose one with `kubectl config use-context NAME`"
            )
        chosen = next((c for c in contexts if c.get("name") == self.context_name), None)
        if chosen is None:
            names = ", ".join(str(c.get("name")) for c in contexts) or "none"
            raise KubeConfigError(
                f"{where}: no context named {self.context_name!r} (contexts: {names}); "
                "choose one with `kubectl config use-context NAME`"
            )
        self.context: dict[str, Any] = chosen.get("context") or {}
        self.user_name: str | None = self.context.get("user")
        self.user_node = self._named(merged, "users", self.user_name)
        self.cluster_node = self._named(merged, "clusters", self.context.get("cluster"))
        if self.user_name and self.user_node is None:
            raise KubeConfigError(
                f"{where}: context {self.context_name!r} names user {self.user_name!r}, which "
                "no file defines; add it under users or fix the context"
            )
        self.user: dict[str, Any] = (
            self.user_node.value.get("user") if self.user_node else None
        ) or {}
        # The package's loader, shown every user without `exec` (run here instead).
        self.merged_without_exec = ConfigNode(  # type: ignore[no-untyped-call]
            merged.name,
            {**doc, "users": [_without_exec(u) for u in doc.get("users") or []]},
            merged.path,
        )

    def config(self) -> KubeConfig:
        configuration = self._configuration()
        impersonation = self._impersonation()
        cluster = self.context.get("cluster")
        proxy, server_name = configuration.proxy, configuration.tls_server_name
        if proxy and urllib.parse.urlsplit(proxy).scheme not in ("http", "https"):
            raise KubeConfigError(
                f"{self.where}: clusters[{cluster}].cluster.proxy-url {proxy!r}: only http:// "
                "and https:// proxies are supported"
            )
        if proxy and server_name:
            raise KubeConfigError(
                f"{self.where}: clusters[{cluster}].cluster: tls-server-name together with "
                "proxy-url is not supported (the TLS name would not reach the server through "
                "the proxy); drop one of them"
            )
        return KubeConfig(
            server=configuration.host,
            namespace=self.context.get("namespace") or "default",
            ca_file=configuration.ssl_ca_cert,
            insecure=not configuration.verify_ssl,
            tls_server_name=server_name,
            proxy=proxy,
            impersonation=impersonation,
            fetch=self.fetch,
            credentials=self._credentials(configuration),
        )

    def fetch(self) -> Credentials:
        """Load the user's credentials again: token files re-read, plugins re-run."""
        return self._credentials(self._configuration())

    def _configuration(self) -> Configuration:
        configuration = Configuration()
        try:
            loader = KubeConfigLoader(  # type: ignore[no-untyped-call]
                self.merged_without_exec, active_context=self.context_name, config_base_path=None
            )
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        except ConfigException as exc:
            raise KubeConfigError(f"{self.where} (context {self.context_name!r}): {exc}") from exc
        except OSError as exc:
            raise KubeConfigError(
                f"{self.where} (context {self.context_name!r}): cannot read {exc.filename}: "
                f"{exc.strerror}"
            ) from exc
        return configuration

    def _credentials(self, configuration: Configuration) -> Credentials:
        rotating = "tokenFile" in self.user or "auth-provider" in self.user
        credentials = _credentials(configuration, refresh=rotating)
        # The package's order: auth-provider, token, exec, then username and password.
        if "exec" in self.user and not ({"auth-provider", "token", "tokenFile"} & set(self.user)):
            assert self.user_node is not None
            return run_exec_plugin(
                self.user_node,
                self.cluster_node,
                where=self.where,
                certificate=credentials.client_certificate,
            )
        return credentials

    def _impersonation(self) -> Impersonation:
        try:
            impersonation = Impersonation.model_validate(self.user)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"])
            raise KubeConfigError(
                f"{self.where}: users[{self.user_name}].user.{field}: {error['msg']}"
            ) from exc
        if not impersonation.user and (
            impersonation.uid or impersonation.groups or impersonation.extra
        ):
            raise KubeConfigError(
                f"{self.where}: users[{self.user_name}].user: as-uid, as-groups and "
                "as-user-extra impersonate a user, so they need `as` (the user name) too"
            )
        return impersonation

    @staticmethod
    def _named(merged: ConfigNode, section: str, name: str | None) -> ConfigNode | None:
        if not name or not merged.value.get(section):
            return None
        node: ConfigNode | None = merged[section].get_with_name(name, safe=True)
        return node


def _in_cluster_configuration() -> Configuration:
    configuration = Configuration()
    try:
        InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=SERVICE_TOKEN_FILENAME,
            cert_filename=SERVICE_CERT_FILENAME,
            try_refresh_token=False,  # refreshed by CredentialCache, off the event loop
        ).load_and_set(configuration)
    except ConfigException as exc:
        raise KubeConfigError(
            f"in-cluster credentials ({Path(SERVICE_TOKEN_FILENAME).parent}): {exc}; run in "
            "a pod with a service-account token, or pass a kubeconfig (--kubeconfig)"
        ) from exc
    return configuration


def _credentials(configuration: Configuration, *, refresh: bool) -> Credentials:
    """Translate what a package loader set on ``configuration``."""
    authorization = configuration.api_key.get("BearerToken")
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        # The in-cluster loader writes "bearer <file content>": send it as kubectl does.
        authorization = f"{'Bearer' if scheme.lower() == 'bearer' else scheme} {value.strip()}"
    certificate = None
    if configuration.cert_file and configuration.key_file:
        certificate = ClientCertificate(
            Path(configuration.cert_file).read_bytes(), Path(configuration.key_file).read_bytes()
        )
    return Credentials(
        authorization=authorization or None,
        client_certificate=certificate,
        refresh_at=dt.datetime.now(dt.UTC) + TOKEN_FILE_PERIOD if refresh else None,
    )


def _load_client_certificate(context: ssl.SSLContext, certificate: ClientCertificate) -> None:
    # ssl loads certificates only from files: a private directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="shiftboss-kube-") as directory:
        cert, key = Path(directory) / "client.crt", Path(directory) / "client.key"
        cert.write_bytes(certificate.cert_pem)
        key.write_bytes(certificate.key_pem)
        context.load_cert_chain(cert, key)


def _without_exec(node: ConfigNode) -> ConfigNode:
    user = {k: v for k, v in (node.value.get("user") or {}).items() if k != "exec"}
    return ConfigNode(node.name, {**node.value, "user": user}, node.path)  # type: ignore[no-untyped-call]
