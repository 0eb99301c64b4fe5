"""``Worker``: the skill registry a job author builds, and the entry points that serve it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any, TypeVar, overload

from .client import OperatorClient
from .config import WorkerConfig
from .errors import ConfigError
from .logs import configure_logging, log_ids
from .protocol import SkillSpec
from .runner import Runner
from .server import HealthServer
from .skills import Skill, make_skill

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])


class Worker:
    """A set of skills, served to one worker pool.

    ::

        worker = Worker()

        @worker.skill()
        async def resize(params: Resize, ctx: Context) -> dict: ...

        if __name__ == "__main__":
            worker.run()          # or: shiftboss-worker run --app app:worker

    ``version`` is reported to the operator at registration (default: the runtime's).
    """

    def __init__(self, version: str = "") -> None:
        self.version = version
        self._skills: dict[str, Skill] = {}
        self._runner: Runner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the registry -------------------------------------------------------------------

    @overload
    def skill(self, func: F, /) -> F: ...
    @overload
    def skill(
        self, func: str | None = None, /, *, name: str | None = None, description: str | None = None
    ) -> Callable[[F], F]: ...

    def skill(
        self,
        func: F | str | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
    ) -> F | Callable[[F], F]:
        """Register a skill: ``@worker.skill()`` or ``@worker.skill(name="x")``.

        The name defaults to the function's, the description to its docstring, the
        schemas come from its type hints. Errors in the signature are raised here, at
        import time, not when the first job arrives.
        """

        def register(fn: F) -> F:
            built = make_skill(fn, name=name, description=description)
            if built.name in self._skills:
                raise ValueError(f"a skill named {built.name!r} is already registered")
            self._skills[built.name] = built
            return fn

        if isinstance(func, str):  # @worker.skill("name"): a common slip, meant as the name
            name, func = func, None
        return register(func) if func is not None else register

    @property
    def skills(self) -> list[SkillSpec]:
        """What the worker registers: each skill's name, description and schemas."""
        return [s.spec for s in self._skills.values()]

    def get_skill(self, name: str) -> Skill | None:
        return self._skills.get(name)

    # -- serving --------------------------------------------------------------------------

    @property
    def runner(self) -> Runner | None:
        """The runner while ``serve`` runs (for readiness, metrics and tests)."""
        return self._runner

    def run(self, config: WorkerConfig | None = None) -> None:
        """Configure logging and serve until drained (blocking); config from env by default."""
        config = config or WorkerConfig.from_env()
        configure_logging(config.log_format, config.log_level)
        asyncio.run(self.serve(config))

    async def serve(
        self,
        config: WorkerConfig | None = None,
        *,
        client: OperatorClient | None = None,
        handle_signals: bool = True,
    ) -> None:
        """Serve until drained: SIGTERM/SIGINT (if ``handle_signals``) or ``drain()``.
        Returns normally then.

        Starts the health server unless ``config.health_port`` is 0.  ``client`` replaces
        the HTTP client built from the config (tests pass one with a mock transport).
        One ``serve`` at a time per Worker; serving again after it returned is fine.
        """
        if self._runner is not None:
            raise RuntimeError("this Worker is already serving")
        config = config or WorkerConfig.from_env()
        if not self._skills:
            raise ConfigError("the worker has no skills: decorate functions with @worker.skill()")
        own_client = client is None
        if client is None:
            config.read_token()  # a missing token file is a clear error now, not at first use
            client = OperatorClient(
                config.operator_url, config.read_token, verify=config.tls_verify()
            )
        runner = Runner(self, config, client)
        self._runner, self._loop = runner, asyncio.get_running_loop()
        server: HealthServer | None = None
        installed: list[signal.Signals] = []
        try:
            with log_ids(worker_id=config.worker_id):
                if config.health_port:
                    server = HealthServer(
                        config.pod_ip,
                        config.health_port,
                        ready=lambda: runner.ready,
                        metrics=runner.metrics.render,
                    )
                    try:
                        await server.start()
                    except OSError as exc:
                        raise ConfigError(
                            f"SHIFTBOSS_HEALTH_PORT={config.health_port}: cannot listen on "
                            f"{config.pod_ip}:{config.health_port} ({exc.strerror}); pick a free "
                            "port or set it to 0 to disable the health server"
                        ) from None
                if handle_signals:
                    installed = _install_signal_handlers(runner)
                await runner.run()
        finally:
            for sig in installed:
                self._loop.remove_signal_handler(sig)
            if server is not None:
                await server.stop()
            if own_client:
                await client.aclose()
            self._runner = self._loop = None

    def drain(self) -> None:
        """Start draining the running ``serve`` (safe from any thread); no-op if idle."""
        runner, loop = self._runner, self._loop
        if runner is None or loop is None:
            return
        if _in_loop_thread(loop):
            runner.drain("drain() called")
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(runner.drain, "drain() called")


def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _install_signal_handlers(runner: Runner) -> list[signal.Signals]:
    if threading.current_thread() is not threading.main_thread():
        return []  # only the main thread may handle signals (e.g. serve() in a test thread)
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, runner.drain, sig.name)
        except (NotImplementedError, RuntimeError, ValueError):
            continue  # not supported here (e.g. Windows): Ctrl-C still stops the process
        installed.append(sig)
    return installed
