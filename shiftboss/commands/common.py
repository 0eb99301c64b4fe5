"""What every job command shares: kubectl's global flags, the session (credentials and
the client, opened on first use so that bad input is refused before any network), the
exit codes, and the one place that turns an error into a message and an exit code."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from enum import IntEnum

import httpx
from pydantic import ValidationError

from shiftboss.client import (
    AsyncClient,
    JobCancelled,
    JobFailed,
    JobNotFound,
    RequestFailed,
    RerunRefused,
    WaitTimeout,
)
from shiftboss.client.aio import load_config
from shiftboss.kube.config import KubeConfig, KubeConfigError


class Exit(IntEnum):
    """The exit codes of the job commands (docs/cli.md)."""

    OK = 0
    #: The job failed or was cancelled (``submit --wait``, ``wait``).
    JOB_FAILED = 1
    #: Usage or bad input: a flag, a parameter, a manifest, a Job the API server refused,
    #: a rerun of a Job not finished or cancelled.
    USAGE = 2
    #: ``--timeout`` passed before the job finished; the job keeps running.
    TIMEOUT = 3
    #: The API server refused or could not be reached: not found, forbidden, credentials.
    API = 4


class UsageError(Exception):
    """Input that argparse could not check on its own (exit 2)."""


#: Statuses of a refusal that blames the request's content, not access to the cluster.
_INVALID_STATUSES = frozenset({400, 422})


def exit_code(error: BaseException) -> Exit | None:
    """The exit code for ``error``; None for an error no command expects (a bug)."""
    if isinstance(error, JobFailed | JobCancelled):
        return Exit.JOB_FAILED
    if isinstance(error, WaitTimeout):
        return Exit.TIMEOUT
    if isinstance(error, UsageError | ValidationError | RerunRefused):
        return Exit.USAGE
    if isinstance(error, RequestFailed):
        return Exit.USAGE if error.status in _INVALID_STATUSES else Exit.API
    if isinstance(error, KubeConfigError | httpx.HTTPError):
        return Exit.API
    return None


def describe(error: BaseException, prog: str, args: argparse.Namespace) -> str:
    """What to print for ``error``: the client's message (it names the object), plus
    the next command to type where there is one."""
    namespace = f" -n {args.namespace}" if getattr(args, "namespace", None) else ""
    if isinstance(error, WaitTimeout):
        target = f"{error.job.name}{namespace}"
        return f"{error} ({prog} wait {target}, or {prog} cancel {target})"
    if isinstance(error, JobNotFound):
        return f"{error}; list the namespace's jobs with: {prog} get{namespace}"
    if isinstance(error, httpx.HTTPError):
        where = f" {error.request.url.host}" if _has_request(error) else ""
        return (
            f"cannot reach the API server{where}: {error or type(error).__name__}; check "
            "that the cluster is up and the kubeconfig (--kubeconfig, --context)"
        )
    if isinstance(error, ValidationError):
        return "invalid job: " + "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'job'}: {e['msg']}" for e in error.errors()
        )
    return str(error)


def _has_request(error: httpx.HTTPError) -> bool:
    try:
        error.request  # noqa: B018 (raises when the error was not tied to a request)
    except RuntimeError:
        return False
    return True


def add_global_flags(parser: argparse.ArgumentParser) -> None:
    """kubectl's flags that choose the cluster, credentials and namespace."""
    parser.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    parser.add_argument("--context", help="the kubeconfig context (default: the current one)")
    parser.add_argument(
        "--kubeconfig", help="the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )


class Session:
    """The credentials and the client of one command, loaded on first use."""

    def __init__(self, args: argparse.Namespace, prog: str) -> None:
        self.args, self.prog = args, prog
        self._config: KubeConfig | None = None
        self._client: AsyncClient | None = None

    async def config(self) -> KubeConfig:
        if self._config is None:
            # An exec credential plugin may run: not on the event loop.
            self._config = await asyncio.to_thread(
                load_config, self.args.kubeconfig, self.args.context
            )
        return self._config

    async def client(self) -> AsyncClient:
        if self._client is None:
            self._client = AsyncClient(self.args.namespace, config=await self.config())
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


Handler = Callable[[argparse.Namespace, Session], Awaitable[int]]


def execute(args: argparse.Namespace, handler: Handler, prog: str) -> int:
    """Run ``handler``; errors become a message on stderr and an exit code."""

    async def run() -> int:
        session = Session(args, prog)
        try:
            return await handler(args, session)
        except Exception as exc:
            code = exit_code(exc)
            if code is None:
                raise
            print(f"{prog} {args.command}: {describe(exc, prog, args)}", file=sys.stderr)
            return code
        finally:
            await session.aclose()

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")


def duration(text: str) -> float:
    """Seconds in ``text``: ``90`` (seconds), ``1.5s``, ``500ms``, ``5m``, ``1h30m``, as
    kubectl's ``--timeout``; an ``argparse`` type."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise argparse.ArgumentTypeError(
                f"invalid duration {text!r}: expected a number of seconds or a Go duration "
                "such as 30s, 5m or 1h30m"
            ) from None
        unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
        seconds = sum(float(number) * unit[u] for number, u in parts)
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be more than 0")
    return seconds
