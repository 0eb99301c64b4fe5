"""Kopf handlers: thin adapters from watch events to the App, for WorkerPools and their
pods.  Jobs are not watched through Kopf: the App's own list+watch
(``shiftboss.kube.informer``) pages through them at start and feeds the dispatcher
without Kopf's per-event machinery, on the operator's busiest watch.

Only ``on.event`` handlers, all ``async`` (Kopf runs sync handlers in threads, and
the App is single-threaded asyncio): they keep no per-object state, so Kopf writes no progress
or last-handled-configuration annotations (the hot path stays create + two status
writes per job).  Reconciliation is level-based in ``PoolController`` and the
``Dispatcher``; these handlers only tell them what changed.
"""

from __future__ import annotations

import kopf

from shiftboss.api.common import API_GROUP, API_VERSION
from shiftboss.app import App
from shiftboss.pools.pods import POOL_LABEL


def register(registry: kopf.OperatorRegistry, app: App) -> None:
    @kopf.on.login(registry=registry, backoff=10)
    async def login(**_: object) -> kopf.AiohttpSession:
        # The operator's credentials (exec plugins, rotating tokens, impersonation), renewed
        # per request; a failure is retried every 10 s with the plugin's error in the log.
        from shiftboss.kube.kopf_login import login as kopf_login

        return await kopf_login(app.client.config)

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **_: object) -> None:
        settings.posting.enabled = False  # handler logs are not Kubernetes Events
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        # No cluster-wide list/watch of CRDs and namespaces (a namespaced install has no
        # such rights): Kopf reads the served resources once, after this handler, and
        # app.start() waits until ours are served (shiftboss.kube.discovery).
        settings.scanning.disabled = True
        await app.start()

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: object) -> None:
        await app.stop()

    @kopf.on.event(API_GROUP, API_VERSION, "workerpools", registry=registry)
    async def pool_event(event: kopf.RawEvent, **_: object) -> None:
        app.pools.observe(dict(event["object"]), deleted=event["type"] == "DELETED")
        meta = event["object"]["metadata"]
        app.dispatcher.wake(meta["namespace"], meta["name"])  # e.g. spec.paused turned false

    @kopf.on.event("", "v1", "pods", labels={POOL_LABEL: kopf.PRESENT}, registry=registry)
    async def pod_event(event: kopf.RawEvent, **_: object) -> None:
        pod = event["object"]
        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        phase = (pod.get("status") or {}).get("phase")
        deleted = event["type"] == "DELETED"
        finished = phase in ("Succeeded", "Failed")
        if (deleted or meta.get("deletionTimestamp")) and not finished:
            # Deleted while it ran (a rollout, a scale-down, an eviction): what its worker
            # loses now is not the job's fault.  A worker that crashed on its own is
            # finished before anyone deletes its pod.
            app.worker_disrupted(namespace, name, f"worker pod {name} was deleted")
        if deleted or finished:
            app.worker_gone(namespace, name)
        app.pool_changed(namespace, meta["labels"][POOL_LABEL])
