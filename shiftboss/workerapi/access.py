"""Who is calling, and what they may act for.

Every request is authorised against the caller's identity (its token, reviewed by the
API server) and the pool it acts for: a pod-bound token acts only as its own pod and
for its pod's pool; a service-account token acts only for the pools of its namespace
that run under that service account, and only as the worker ids it registered.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from shiftboss.api.workerpool import WorkerPoolSpec
from shiftboss.workerapi.problems import ApiProblem
from shiftboss.workers.auth import Authenticator, WorkerIdentity
from shiftboss.workers.registry import WorkerInfo, WorkerRegistry

#: Looks up a pool's spec by (namespace, name); None when there is no such pool.
PoolLookup = Callable[[str, str], WorkerPoolSpec | None]
#: The worker id holding an attempt of a job in a namespace (raises when none does).
LeaseHolder = Callable[[str, str], str]


class Access:
    def __init__(
        self,
        auth: Authenticator,
        registry: WorkerRegistry,
        pool_spec: PoolLookup,
        lease_holder: LeaseHolder,
    ) -> None:
        self.auth, self.registry = auth, registry
        self.pool_spec, self.lease_holder = pool_spec, lease_holder

    async def identity(self, request: web.Request) -> WorkerIdentity:
        return await self.auth.identify(
            request.headers.get("Authorization"), peer=request.remote or ""
        )

    def authorize_pool(self, identity: WorkerIdentity, pool: str) -> None:
        if identity.pool is not None:
            if identity.pool != pool:
                raise ApiProblem(
                    403,
                    "wrong_pool",
                    f"this worker's pod belongs to pool {identity.pool!r}, not {pool!r}",
                    "pool",
                )
            return
        # A token not bound to a pod: the pool must run under the token's service account.
        spec = self.pool_spec(identity.namespace, pool)
        if spec is None or spec.service_account_name != identity.service_account:
            raise ApiProblem(
                403,
                "wrong_pool",
                f"service account {identity.namespace}/{identity.service_account} may not act "
                f"for pool {pool!r}",
                "pool",
            )

    async def worker(self, request: web.Request) -> WorkerInfo:
        """The calling worker, as named in the path."""
        identity = await self.identity(request)
        return self.registered(identity, request.match_info["worker_id"])

    async def attempt_worker(self, request: web.Request) -> WorkerInfo:
        """The worker reporting on an attempt: the token's pod, or the attempt's lease
        holder, which must then be a worker this identity registered."""
        identity = await self.identity(request)
        attempt = request.match_info["attempt_id"]
        worker_id = identity.pod_name or self.lease_holder(identity.namespace, attempt)
        return self.registered(identity, worker_id)

    def registered(self, identity: WorkerIdentity, worker_id: str) -> WorkerInfo:
        if identity.pod_name is not None and identity.pod_name != worker_id:
            raise ApiProblem(
                403, "wrong_worker", f"this token belongs to worker {identity.pod_name!r}"
            )
        worker = self.registry.get(identity.namespace, worker_id)
        if worker is None:
            raise ApiProblem(
                404,
                "worker_not_registered",
                f"worker {worker_id!r} is not registered (the operator may have restarted): "
                "register again",
            )
        if worker.owner != identity.owner:
            if identity.pod_name == worker_id:
                # Its own name, taken by another identity (after an operator restart, say):
                # a pod's registration always wins, so tell it to register again.
                raise ApiProblem(
                    404,
                    "worker_not_registered",
                    f"worker {worker_id!r} is not registered for this pod: register again",
                )
            raise ApiProblem(
                403, "wrong_worker", f"worker {worker_id!r} is registered by another identity"
            )
        self.authorize_pool(identity, worker.pool)
        return worker
