"""``shiftboss``: run the operator, print the CRDs.  Also a kubectl plugin (``kubectl shiftboss``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from pydantic import ValidationError


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"SHIFTBOSS_{name}", default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shiftboss", description="Shiftboss: workers as Kubernetes custom resources."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=None,
        help="serve only this namespace (repeatable; env SHIFTBOSS_NAMESPACES, comma-separated)",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="serve every namespace (default)"
    )
    run.add_argument("--host", default=_env("HOST", "0.0.0.0"), help="worker API bind address")
    run.add_argument(
        "--port", type=int, default=int(_env("PORT", "8000") or 8000), help="worker API port"
    )
    run.add_argument(
        "--worker-api-url",
        default=_env("WORKER_API_URL"),
        help="URL workers use to reach the operator (default http://<host>:<port>)",
    )
    run.add_argument(
        "--lease-seconds", type=float, default=float(_env("LEASE_SECONDS", "15") or 15)
    )
    run.add_argument(
        "--heartbeat-seconds", type=float, default=float(_env("HEARTBEAT_SECONDS", "5") or 5)
    )
    run.add_argument(
        "--peering",
        default=_env("PEERING"),
        help="Kopf peering name for several replicas (default: standalone)",
    )
    run.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    run.add_argument("-v", "--verbose", action="store_true")

    sub.add_parser("crds", help="print the CustomResourceDefinitions (YAML)")
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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

    namespaces = args.namespace or [n for n in (_env("NAMESPACES") or "").split(",") if n]
    try:
        settings = OperatorSettings(
            namespaces=[] if args.all_namespaces else namespaces,
            host=args.host,
            port=args.port,
            worker_api_url=args.worker_api_url,
            lease_seconds=args.lease_seconds,
            heartbeat_interval_seconds=args.heartbeat_seconds,
            peering=args.peering,
            kubeconfig=args.kubeconfig,
        )
    except ValidationError as exc:
        for error in exc.errors():
            print(
                f"shiftboss run: --{'-'.join(str(p) for p in error['loc'])}: {error['msg']}",
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
    asyncio.run(
        kopf.operator(
            registry=registry,
            standalone=settings.peering is None,
            peering_name=settings.peering,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
