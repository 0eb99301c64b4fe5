"""``shiftboss``: run the operator, print the CRDs, submit and follow Jobs (the job
commands live in ``shiftboss.commands``).  Also a kubectl plugin (``kubectl shiftboss``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

if TYPE_CHECKING:
    import kopf

    from shiftboss.app import App
    from shiftboss.kube.client import KubeClient

#: `shiftboss run` options that have an environment variable: flag -> settings field.
RUN_OPTIONS = {
    "host": "SHIFTBOSS_HOST",
    "port": "SHIFTBOSS_PORT",
    "worker_api_url": "SHIFTBOSS_WORKER_API_URL",
    "lease_seconds": "SHIFTBOSS_LEASE_SECONDS",
    "heartbeat_seconds": "SHIFTBOSS_HEARTBEAT_SECONDS",
    "restore_grace_seconds": "SHIFTBOSS_RESTORE_GRACE_SECONDS",
    "cancel_grace_seconds": "SHIFTBOSS_CANCEL_GRACE_SECONDS",
    "aging_seconds_per_level": "SHIFTBOSS_AGING_SECONDS_PER_LEVEL",
    "tls_cert_file": "SHIFTBOSS_TLS_CERT_FILE",
    "tls_key_file": "SHIFTBOSS_TLS_KEY_FILE",
    "worker_ca_file": "SHIFTBOSS_WORKER_CA_FILE",
    "leader_elect_namespace": "SHIFTBOSS_LEADER_ELECT_NAMESPACE",
    "leader_elect_lease_seconds": "SHIFTBOSS_LEADER_ELECT_LEASE_SECONDS",
    "shard": "SHIFTBOSS_SHARD",
    "shard_lease_seconds": "SHIFTBOSS_SHARD_LEASE_SECONDS",
    "kubeconfig": "KUBECONFIG",
}


def _env_flag(variable: str, default: bool) -> bool:
    value = os.environ.get(variable, "").strip().lower()
    return default if not value else value in ("1", "true", "yes")


def build_parser(prog: str = "shiftboss") -> argparse.ArgumentParser:
    from shiftboss.commands import add_commands

    parser = argparse.ArgumentParser(
        prog=prog, description="Shiftboss: workers as Kubernetes custom resources."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run",
        help="run the operator against the current kubeconfig",
        description="Run the operator. Every option can also be set by the environment "
        "variable named in its help; a flag wins over its variable.",
    )
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=None,
        help="serve only this namespace (repeatable; SHIFTBOSS_NAMESPACES, comma-separated)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="serve every namespace (default)"
    )
    helps = {
        "host": "worker API bind address (default 0.0.0.0)",
        "port": "worker API port (default 8000)",
        "worker_api_url": "URL worker pods use to reach the operator (default http://<host>:<port>)",
        "lease_seconds": "a silent worker keeps its attempts this long (default 15)",
        "heartbeat_seconds": "how often workers heartbeat (default 5)",
        "restore_grace_seconds": "after a restart or hand-over, running attempts keep their "
        "lease this long so their workers can reconnect (default twice --lease-seconds)",
        "cancel_grace_seconds": "a cancelled or timed-out skill gets this long to stop "
        "before it is cancelled (default 5)",
        "aging_seconds_per_level": "a waiting job ranks one priority level higher for every "
        "this many seconds it is older than another, so low priority is never starved; "
        "at most 86400 (default 60; docs/scheduling.md)",
        "tls_cert_file": "serve the worker API over TLS with this certificate (PEM)",
        "tls_key_file": "the private key of --tls-cert-file (PEM)",
        "worker_ca_file": "a PEM CA bundle that worker pods verify the worker API's "
        "certificate with (given to them as SHIFTBOSS_CA_DATA; a new bundle rolls them)",
        "leader_elect_namespace": "namespace of the leader Lease (default: the kubeconfig's)",
        "leader_elect_lease_seconds": "standbys take over after the leader missed renewing "
        "its Lease for this long (default 15)",
        "shard": "name of this operator's shard, the holder of the Lease shiftboss-shard it "
        "claims in each namespace it serves (all namespaces: the Lease "
        "default/shiftboss-all-namespaces); it refuses to run (exit 2) while another shard "
        "holds one. Give each deployment its own name and its replicas the same one "
        "(default: the namespace of the leader Lease)",
        "shard_lease_seconds": "another shard may take over this shard's claims after they "
        "went unrenewed for this long; the operator stops when it could not renew them for "
        "two thirds of it (default 60)",
        "kubeconfig": "kubeconfig file (default: $KUBECONFIG, merged; in a pod, in-cluster; "
        "then ~/.kube/config)",
    }
    for field, variable in RUN_OPTIONS.items():
        run.add_argument(f"--{field.replace('_', '-')}", help=f"{helps[field]}; {variable}")
    run.add_argument(
        "--leader-elect",
        action="store_true",
        default=_env_flag("SHIFTBOSS_LEADER_ELECT", False),
        help="run only while holding the Lease shiftboss-operator, so that several replicas "
        "can stand by; SHIFTBOSS_LEADER_ELECT=true",
    )
    run.add_argument(
        "--no-uvloop",
        dest="uvloop",
        action="store_false",
        default=_env_flag("SHIFTBOSS_UVLOOP", True),
        help="run on asyncio's own event loop instead of uvloop; SHIFTBOSS_UVLOOP=false",
    )
    run.add_argument("-v", "--verbose", action="store_true")

    sub.add_parser("crds", help="print the CustomResourceDefinitions (YAML)")
    sub.add_parser("version", help="print the version")
    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from shiftboss.commands import COMMANDS, dispatch, program_name

    prog = program_name(sys.argv[0])
    args = build_parser(prog).parse_args(argv)
    if args.command in COMMANDS:
        return dispatch(args, prog)
    if args.command == "version":
        from importlib.metadata import version

        print(version("shiftboss"))
        return 0
    if args.command == "crds":
        import yaml

        from shiftboss.api.crdgen import render_crds

        print(yaml.safe_dump_all(list(render_crds().values()), sort_keys=False), end="")
        return 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    import kopf

    from shiftboss.app import App
    from shiftboss.handlers import register
    from shiftboss.kube.config import KubeConfigError
    from shiftboss.settings import OperatorSettings

    namespaces = args.namespace or [
        n for n in os.environ.get("SHIFTBOSS_NAMESPACES", "").split(",") if n.strip()
    ]
    values: dict[str, Any] = {}
    for field, variable in RUN_OPTIONS.items():
        value = getattr(args, field)
        value = value if value is not None else os.environ.get(variable) or None
        if value is not None:
            values[field] = value
    values["leader_elect"] = args.leader_elect
    values["uvloop"] = args.uvloop
    try:
        settings = OperatorSettings(namespaces=[] if args.all_namespaces else namespaces, **values)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            flag = f"--{field.replace('_', '-')}"
            env_var = RUN_OPTIONS.get(field)
            where = f"{flag} (or {env_var})" if env_var else flag
            print(
                f"shiftboss run: {where}: {error['msg']}, got {error.get('input')!r}",
                file=sys.stderr,
            )
        return 2
    kopf.configure(verbose=args.verbose, log_prefix=False)
    logging.getLogger("shiftboss").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.verbose:
        # One line per request or per handled event drowns what matters.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        app = App(settings)
    except (KubeConfigError, OSError) as exc:
        print(f"shiftboss run: {exc}", file=sys.stderr)
        return 2
    registry = kopf.OperatorRegistry()
    register(registry, app)
    with asyncio.Runner(loop_factory=_loop_factory(settings.uvloop)) as runner:
        return runner.run(serve(app, registry))


def _loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    import uvloop

    return uvloop.new_event_loop


async def serve(app: App, registry: kopf.OperatorRegistry) -> int:
    """Run Kopf (and with it the App) while holding the shard's claims; with leader
    election, only while leading.

    A standby serves health endpoints on the operator's address until it is elected; a
    leader that loses the Lease closes the dispatcher at once, stops, and exits 1 so
    that its pod restarts as a standby.  The leader (or the only replica) claims the
    shard's namespaces before Kopf starts and exits 2 when another shard serves one of
    them; losing the claims stops it like losing the Lease.
    """
    import kopf

    from shiftboss import stackdump
    from shiftboss.kube.client import KubeClient
    from shiftboss.kube.leases import KubeLeaseDirectory
    from shiftboss.leader import ElectionTiming
    from shiftboss.shards import LostShard, ShardClaims, ShardRefused, run_claimed

    settings = app.settings
    stackdump.install(asyncio.get_running_loop())  # SIGUSR1/SIGUSR2: where is it stuck?
    logging.getLogger("shiftboss").info(
        "event loop: %s", type(asyncio.get_running_loop()).__module__.split(".")[0]
    )

    async def run_kopf() -> None:
        await kopf.operator(
            registry=registry,
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
        )

    namespace = settings.leader_elect_namespace or app.client.config.namespace
    # Its own connection: the App closes its client when Kopf stops, before the release.
    async with KubeClient(app.client.config) as client:
        claims = ShardClaims(
            KubeLeaseDirectory(client),
            settings.shard or namespace,
            settings.namespaces,
            ElectionTiming.for_lease(settings.shard_lease_seconds),
        )

        async def operate() -> None:
            await run_claimed(claims, run_kopf, stop_acting=app.dispatcher.close)

        try:
            return await _serve_elected(app, client, namespace, operate)
        except ShardRefused as exc:
            print(f"shiftboss run: {exc}", file=sys.stderr)
            return 2
        except LostShard:
            return 1


async def _serve_elected(
    app: App, client: KubeClient, namespace: str, operate: Callable[[], Coroutine[Any, Any, None]]
) -> int:
    """``operate``, with leader election when it is on."""
    from shiftboss.kube.leases import KubeLeaseStore
    from shiftboss.leader import ElectionTiming, LeaderElector, run_elected
    from shiftboss.ownpod import LeaderLabel, OwnPodError
    from shiftboss.standby import StandbyError, StandbyServer

    settings = app.settings
    if not settings.leader_elect:
        await operate()
        return 0
    elector = LeaderElector(
        KubeLeaseStore(client, namespace),
        ElectionTiming.for_lease(settings.leader_elect_lease_seconds),
        identity=f"{socket.gethostname()}-{os.getpid()}",
    )
    standby = StandbyServer(settings.host, settings.port, app.tls)
    app.before_listen = standby.stop  # the leader's own server takes over the port
    try:
        return await run_elected(
            elector,
            operate,
            standing_by=standby,
            stop_acting=app.dispatcher.close,
            leader_label=LeaderLabel.from_env(client, os.environ),
        )
    except (StandbyError, OwnPodError) as exc:
        print(f"shiftboss run: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
