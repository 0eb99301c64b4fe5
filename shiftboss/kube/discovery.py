"""Wait until the API server serves Shiftboss's resources.

Kopf's cluster scanning is off (it would need cluster-wide list/watch on CRDs and
namespaces, rights a namespaced install does not grant), so Kopf reads the served
resources once, after the startup handlers.  An operator started in the same breath as
its CRDs (one ``helm install``) must therefore wait for them to be served first.
"""

from __future__ import annotations

import asyncio
import logging
import time

from shiftboss.api.common import API_GROUP, API_VERSION
from shiftboss.kube.client import ApiError, KubeClient

log = logging.getLogger("shiftboss.discovery")

#: The resources the operator watches; both must be served before it starts.
REQUIRED = frozenset({"jobs", "workerpools"})


async def wait_for_resources(
    client: KubeClient, *, poll_seconds: float = 1.0, warn_every_seconds: float = 15.0
) -> None:
    """Return once ``/apis/shiftboss.io/<version>`` lists jobs and workerpools; log what is
    missing (and how to install it) every ``warn_every_seconds`` while it is not."""
    path = f"/apis/{API_GROUP}/{API_VERSION}"
    warned_at = float("-inf")
    while True:
        try:
            listing = await client.get(path)
            served = {r.get("name") for r in listing.get("resources", [])}
        except ApiError as exc:
            if not exc.not_found:
                raise
            served = set()
        missing = REQUIRED - served
        if not missing:
            return
        now = time.monotonic()
        if now - warned_at >= warn_every_seconds:
            warned_at = now
            log.warning(
                "waiting for the API server to serve %s in %s: install the CRDs "
                "(kubectl apply --server-side -f crds/, or the Helm chart with crds.install=true)",
                ", ".join(sorted(missing)),
                path,
            )
        await asyncio.sleep(poll_seconds)
