"""Kopf's connection to the API server, authenticated the way ``KubeClient`` is.

The ``kopf.on.login`` handler returns a ``kopf.AiohttpSession`` rather than a
``kopf.ConnectionInfo``: the latter has no place for impersonation headers or a TLS
server name, and freezes a token until Kopf logs in again, which closes every watch
stream.  The session's middleware instead takes the config's current credentials on every
request (renewed before they expire, off the event loop), and after a 401 renews them
once and retries; only if that fails too does Kopf see the 401 and log in again.

Kopf closes its session when the operator stops or logs in again (after a 401, or a TLS
stream the API server dropped), while other requests may be on their way: aiohttp looks
up netrc and the proxy in threads after it checked that the session is open, and before
it uses the session's connector.  A request in that gap failed with a bare
``AssertionError`` that Kopf does not expect (a traceback; the operator crashed when it
stopped during Kopf's start-up scan); a ``RuntimeError`` on a closed session is what
Kopf turns into "retry with the new session".
"""

from __future__ import annotations

import aiohttp
import kopf

from shiftboss.kube.config import KubeConfig
from shiftboss.kube.credentials import Credentials


async def login(config: KubeConfig) -> kopf.AiohttpSession:
    """For ``kopf.on.login``; raises ``KubeConfigError`` when the API server refused the
    credentials and no newer ones are to be had, so that Kopf retries later."""
    await config.credentials.for_login()
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=config.ssl_context()),
        headers=config.impersonation.headers(),
        proxy=config.proxy,
        trust_env=True,  # HTTPS_PROXY and NO_PROXY, as for KubeClient (httpx) and kubectl
        middlewares=(_authenticate(config),),
    )
    return kopf.AiohttpSession(
        server=config.server, default_namespace=config.namespace, aiohttp_session=session
    )


def _authenticate(config: KubeConfig) -> aiohttp.ClientMiddlewareType:
    async def authenticate(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        if config.tls_server_name:
            request.server_hostname = config.tls_server_name
        credentials = await config.credentials.get()
        _authorize(request, credentials)
        response = await _send(request, handler)
        if response.status != 401:
            return response
        renewed = await config.credentials.after_unauthorized(credentials)
        if renewed is None:
            return response
        response.release()
        _authorize(request, renewed)
        return await _send(request, handler)

    return authenticate


async def _send(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    # Nothing awaits between this check and aiohttp's use of the connector.
    if request.session.closed:
        raise RuntimeError("Session is closed: Kopf closed it while this request was on its way")
    return await handler(request)


def _authorize(request: aiohttp.ClientRequest, credentials: Credentials) -> None:
    request.headers.pop("Authorization", None)
    if credentials.authorization:
        request.headers["Authorization"] = credentials.authorization
