"""``workers POOL``: a WorkerPool's registered workers, their skills and busy slots.

The pool is read through the API server (its UID and status counts: RBAC decides who may
see it), then its workers from the operator's read view (``/v1/pools/{ns}/{uid}/workers``,
reached as ``get``'s queue positions are: ``--operator-url`` or the service proxy)."""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from shiftboss.api.common import API_GROUP, API_VERSION
from shiftboss.api.workerpool import WorkerPool
from shiftboss.client import PermissionDenied, RequestFailed
from shiftboss.commands.common import Exit, Session
from shiftboss.commands.jobs import SubParsers
from shiftboss.commands.operator import Operator, OperatorUnreachable
from shiftboss.commands.render import human_duration
from shiftboss.kube.client import ApiError, KubeClient, Resource
from shiftboss.workerapi.view_models import PoolWorkersView, WorkerView

WORKERPOOLS = Resource(API_GROUP, API_VERSION, "workerpools")
COLUMNS = ("ID", "POD", "SKILLS", "BUSY/SLOTS", "STATE", "LAST SEEN")


def add_parser(sub: SubParsers, parent: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "workers",
        parents=[parent],
        help="list a WorkerPool's workers, their skills and busy slots",
        description="List the workers registered for the WorkerPool POOL, as the operator "
        "knows them: skills, busy and total slots, draining, time since last heard from.",
    )
    parser.add_argument("pool", metavar="POOL")
    parser.add_argument("-o", "--output", choices=("json", "yaml"), help="print as json or yaml")
    parser.set_defaults(handler=workers)


def state(worker: WorkerView) -> str:
    if worker.draining:
        return "draining"
    return "busy" if worker.busy else "idle"


def table(view: PoolWorkersView) -> str:
    """kubectl's table: columns padded to their widest cell, 3 spaces apart."""
    rows = [list(COLUMNS)]
    rows += [
        [
            w.id,
            w.pod or "<none>",
            ",".join(w.skills),
            f"{w.busy}/{w.slots}",
            state(w),
            f"{human_duration(w.last_seen_seconds)} ago",
        ]
        for w in view.workers
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


async def read_pool(session: Session, namespace: str, name: str) -> WorkerPool:
    async with KubeClient(await session.config()) as kube:
        try:
            return WorkerPool.model_validate(await kube.get(WORKERPOOLS.path(namespace, name)))
        except ApiError as exc:
            if exc.not_found:
                raise RequestFailed(
                    f"workerpool {name} not found in namespace {namespace}; list them with: "
                    f"kubectl get workerpools -n {namespace}",
                    exc.status,
                    exc.reason,
                ) from None
            if exc.status == 403:
                raise PermissionDenied(
                    f"cannot read workerpool {name} in namespace {namespace}: RBAC does not "
                    f"allow verb 'get' on workerpools.{API_GROUP} there",
                    exc.status,
                    exc.reason,
                ) from None
            raise RequestFailed(
                f"cannot read workerpool {name} in namespace {namespace}: {exc}",
                exc.status,
                exc.reason,
            ) from None


async def workers(args: argparse.Namespace, session: Session) -> int:
    namespace = (await session.client()).namespace
    pool = await read_pool(session, namespace, args.pool)
    operator = Operator(args, session)
    try:
        view = await operator.pool_workers(namespace, pool.uid or "")
    except OperatorUnreachable as exc:
        print(f"{session.prog} workers: {exc}", file=sys.stderr)
        return Exit.API
    finally:
        await operator.aclose()
    if args.output == "json":
        print(json.dumps(view.model_dump(mode="json"), indent=4))
    elif args.output == "yaml":
        print(yaml.safe_dump(view.model_dump(mode="json"), sort_keys=False).rstrip("\n"))
    elif not view.workers:
        status = pool.status
        ready = f" ({status.ready_replicas} of {status.replicas} pods ready)" if status else ""
        print(f"No workers registered for pool {args.pool}{ready}.", file=sys.stderr)
    else:
        print(table(view))
        if view.truncated:
            print(f"(the first {len(view.workers)} of {view.registered})", file=sys.stderr)
    return Exit.OK
