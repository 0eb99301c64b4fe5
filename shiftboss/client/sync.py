"""``Client``: ``AsyncClient``'s verbs as blocking calls.

The async client runs on a private event loop in a thread of its own, so a blocking call
works from plain scripts and from code that already runs an event loop (Jupyter, a sync
skill's thread) alike. Each method is ``AsyncClient``'s, with the same signature and
docstring (``_blocking``), so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from shiftboss.client.aio import AsyncClient
from shiftboss.kube.config import KubeConfig

P = ParamSpec("P")
R = TypeVar("R")


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Client, P], R]:
    def call(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._run(method(self._async, *args, **kwargs))

    functools.update_wrapper(call, method)  # name, docstring, signature for help()
    return call


class Client:
    """Use as ``with Client(namespace="team-a") as sb:``; the arguments are
    ``AsyncClient``'s. ``close()`` (or leaving the ``with``) closes the connections and
    stops the client's thread."""

    def __init__(
        self,
        namespace: str | None = None,
        *,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        config: KubeConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="shiftboss-client", daemon=True
        )
        self._thread.start()
        self._async = AsyncClient(
            namespace, kubeconfig=kubeconfig, context=context, config=config, transport=transport
        )

    def __enter__(self) -> Client:
        self._run(self._async.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def namespace(self) -> str:
        """The namespace of the Jobs this client submits and reads."""
        return self._async.namespace

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._async.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _run(self, coroutine: Coroutine[Any, Any, R]) -> R:
        future: Future[R] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted (Ctrl-C): stop the call rather than leave it running unseen.
            future.cancel()
            raise

    submit = _blocking(AsyncClient.submit)
    get = _blocking(AsyncClient.get)
    cancel = _blocking(AsyncClient.cancel)
    list = _blocking(AsyncClient.list)
    wait = _blocking(AsyncClient.wait)
    run = _blocking(AsyncClient.run)
    rerun = _blocking(AsyncClient.rerun)
    suspend = _blocking(AsyncClient.suspend)
    resume = _blocking(AsyncClient.resume)
