"""Reaching the operator's read views (``/v1/queue``, ``/v1/pools/.../workers``, see
``shiftboss.workerapi.views``) from the command line: at ``--operator-url`` (or
``SHIFTBOSS_OPERATOR_URL``) directly, else through the API server's service proxy to the
operator's Service (``--operator-service``), with the caller's own kubeconfig
credentials.  The views need no token: their paths carry the object's UID, which the
caller has just read through the API server."""

from __future__ import annotations

import argparse
import os
import re
import ssl
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from shiftboss.commands.common import Session, UsageError
from shiftboss.kube.client import ApiError, KubeClient
from shiftboss.workerapi.view_models import PoolWorkersView, QueueView

#: The chart's Service (release ``shiftboss`` in ``shiftboss-system``) and port name.
DEFAULT_SERVICE = "https:shiftboss-system/shiftboss:worker-api"
#: Seconds to wait for the operator: a read that is only a help must not hold `get` up.
TIMEOUT_SECONDS = 5.0

_SERVICE = re.compile(
    r"(?:(?P<scheme>https?):)?(?P<namespace>[a-z0-9][-a-z0-9]*)/(?P<name>[a-z0-9][-a-z0-9]*)"
    r"(?::(?P<port>[-a-z0-9]+))?"
)

View = TypeVar("View", bound=BaseModel)


class OperatorUnreachable(Exception):
    """The operator's view could not be read; the message says why, in one line."""


@dataclass(frozen=True)
class ServiceRef:
    scheme: str
    namespace: str
    name: str
    port: str

    def proxy_path(self, path: str) -> str:
        return (
            f"/api/v1/namespaces/{self.namespace}/services/"
            f"{self.scheme}:{self.name}:{self.port}/proxy{path}"
        )

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def service_ref(text: str) -> ServiceRef:
    """``[http:|https:]NAMESPACE/NAME[:PORT]``; an argparse type."""
    match = _SERVICE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid operator service {text!r}: expected [https:|http:]NAMESPACE/NAME[:PORT], "
            f"such as {DEFAULT_SERVICE}"
        )
    return ServiceRef(
        match["scheme"] or "https", match["namespace"], match["name"], match["port"] or "worker-api"
    )


def add_operator_flags(parser: argparse.ArgumentParser) -> None:
    """Where the operator's read views are (for queue positions and workers)."""
    env = os.environ.get
    parser.add_argument(
        "--operator-url",
        default=env("SHIFTBOSS_OPERATOR_URL") or None,
        metavar="URL",
        help="the operator's HTTP API, such as https://shiftboss.example:8000 (default: "
        "$SHIFTBOSS_OPERATOR_URL, else through the API server's service proxy)",
    )
    parser.add_argument(
        "--operator-service",
        type=service_ref,
        # A string: argparse parses it as it parses the flag (a bad one is a usage error).
        default=env("SHIFTBOSS_OPERATOR_SERVICE") or DEFAULT_SERVICE,
        metavar="[SCHEME:]NS/NAME[:PORT]",
        help="the operator's Service, reached through the API server (default: "
        f"$SHIFTBOSS_OPERATOR_SERVICE, else {DEFAULT_SERVICE})",
    )
    parser.add_argument(
        "--operator-ca-file",
        default=env("SHIFTBOSS_OPERATOR_CA_FILE") or None,
        metavar="PATH",
        help="CA bundle to verify --operator-url's certificate with "
        "(default: $SHIFTBOSS_OPERATOR_CA_FILE, else the system's)",
    )
    parser.add_argument(
        "--operator-insecure-skip-tls-verify",
        action="store_true",
        help="do not verify --operator-url's certificate (as kubectl's "
        "--insecure-skip-tls-verify does for the API server)",
    )


class Operator:
    """The operator's read views for one command; ``aclose`` when done."""

    def __init__(self, args: argparse.Namespace, session: Session) -> None:
        self.args, self.session = args, session
        self._http: httpx.AsyncClient | None = None
        self._kube: KubeClient | None = None

    @property
    def where(self) -> str:
        if self.args.operator_url:
            return f"the operator at {self.args.operator_url}"
        return f"the operator's Service {self.args.operator_service} (via the API server)"

    async def queue(self, namespace: str, uid: str) -> QueueView:
        return await self._get(f"/v1/queue/{namespace}/{uid}", QueueView, f"job uid {uid}")

    async def pool_workers(self, namespace: str, uid: str) -> PoolWorkersView:
        path = f"/v1/pools/{namespace}/{uid}/workers"
        return await self._get(path, PoolWorkersView, f"pool uid {uid}")

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._kube is not None:
            await self._kube.close()

    async def _get(self, path: str, model: type[View], what: str) -> View:
        try:
            if self.args.operator_url:
                body = await self._direct(path)
            else:
                body = await self._proxied(path)
            return model.model_validate(body)
        except ApiError as exc:
            raise OperatorUnreachable(self._refusal(exc, what)) from None
        except httpx.HTTPStatusError as exc:
            raise OperatorUnreachable(
                self._refusal(ApiError(exc.response.status_code, "", _error_text(exc)), what)
            ) from None
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            hint = ""
            if "CERTIFICATE" in str(exc).upper():
                hint = " (give its CA with --operator-ca-file)"
            raise OperatorUnreachable(
                f"cannot reach {self.where}: {exc or type(exc).__name__}{hint}"
            ) from None
        except (ValidationError, ValueError) as exc:
            raise OperatorUnreachable(f"{self.where} answered {path} unexpectedly: {exc}") from None

    async def _direct(self, path: str) -> object:
        if self._http is None:
            verify: ssl.SSLContext | bool = True
            if self.args.operator_insecure_skip_tls_verify:
                verify = False
            elif self.args.operator_ca_file:
                try:
                    verify = ssl.create_default_context(cafile=self.args.operator_ca_file)
                except (OSError, ssl.SSLError) as exc:
                    raise UsageError(
                        f"--operator-ca-file {self.args.operator_ca_file}: {exc}"
                    ) from None
            self._http = httpx.AsyncClient(
                base_url=self.args.operator_url.rstrip("/"),
                verify=verify,
                timeout=TIMEOUT_SECONDS,
                headers={"Accept": "application/json"},
            )
        response = await self._http.get(path)
        response.raise_for_status()
        return response.json()

    async def _proxied(self, path: str) -> object:
        if self._kube is None:
            self._kube = KubeClient(await self.session.config(), timeout=TIMEOUT_SECONDS)
        return await self._kube.get(self.args.operator_service.proxy_path(path))

    def _refusal(self, exc: ApiError, what: str) -> str:
        service = self.args.operator_service
        if exc.status == 403 and not self.args.operator_url:
            return (
                f"RBAC does not allow you 'get' on services/proxy of {service}; pass "
                "--operator-url, or ask for that permission"
            )
        if exc.status == 404 and exc.reason == "NotFound" and not self.args.operator_url:
            # The API server's own Status (the operator's answers carry no reason).
            return f"no Service {service}: pass --operator-service NAMESPACE/NAME or --operator-url"
        if exc.status == 404:
            return f"{self.where} does not know {what} (does it serve this namespace?)"
        if exc.status == 503:
            return f"{self.where} is not serving (no ready leader): {exc.message}"
        return f"{self.where} answered {exc.status}: {exc.message}"


def _error_text(exc: httpx.HTTPStatusError) -> str:
    try:
        return str(exc.response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return exc.response.text[:200]
