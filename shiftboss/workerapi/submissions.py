"""The submission API: create, get and cancel Jobs over HTTP, for callers without a
Kubernetes client (models in ``submission_models``, rules in ``docs/submission-api.md``).

A caller authenticates with a service-account token for audience ``shiftboss`` (the
same review as a worker's, see ``shiftboss.workers.auth``), and each request is
authorised by a SubjectAccessReview for the caller: ``create`` jobs.shiftboss.io in the
namespace to create, ``get`` the Job to read it, ``patch`` it to cancel it.  Only then
does the operator act, with its own credentials, on namespaces it serves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from aiohttp import web

from shiftboss.api.common import API_GROUP, DNS1123_LABEL, DNS1123_LABEL_MAX
from shiftboss.api.job import is_terminal
from shiftboss.jobs.store import JOBS
from shiftboss.kube.client import MERGE_PATCH, ApiError
from shiftboss.kube.reviews import AccessReviewer, ResourceAction, ReviewUser
from shiftboss.workerapi.bodies import parse, reply
from shiftboss.workerapi.problems import ApiProblem
from shiftboss.workerapi.submission_models import (
    NAME_MAX,
    NAME_PATTERN,
    SubmitRequest,
    job_manifest,
    job_view,
)
from shiftboss.workers.auth import POD_NAME_KEY, POD_UID_KEY, WorkerIdentity
from shiftboss.workers.jwt import SERVICE_ACCOUNT_PREFIX

log = logging.getLogger("shiftboss.workerapi")

NAMESPACE = re.compile(DNS1123_LABEL)
JOB_NAME = re.compile(NAME_PATTERN)
#: A cancel re-reads and retries this often when the Job changed under it.
CANCEL_TRIES = 5


class Authenticates(Protocol):
    """Who is calling (``shiftboss.workers.auth.Authenticator``, shared with the workers)."""

    async def identify(
        self, authorization: str | None, *, peer: str | None = None
    ) -> WorkerIdentity: ...


class JobsApi(Protocol):
    """The calls the submission API makes with the operator's own credentials."""

    async def get(self, path: str) -> dict[str, Any]: ...

    async def create(self, path: str, body: Any) -> dict[str, Any]: ...

    async def patch(self, path: str, body: Any, content_type: str = ...) -> dict[str, Any]: ...


def review_user(identity: WorkerIdentity) -> ReviewUser:
    """The caller as the API server knows it.  Only service-account tokens pass
    authentication, and the API server gives every service account exactly these
    groups; a pod-bound token also carries its pod, as the API server's own does."""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if identity.pod_name is not None and identity.pod_uid is not None:
        extra = ((POD_NAME_KEY, (identity.pod_name,)), (POD_UID_KEY, (identity.pod_uid,)))
    return ReviewUser(
        username=f"{SERVICE_ACCOUNT_PREFIX}{identity.namespace}:{identity.service_account}",
        groups=(
            "system:serviceaccounts",
            f"system:serviceaccounts:{identity.namespace}",
            "system:authenticated",
        ),
        extra=extra,
    )


def refusal(user: ReviewUser, action: ResourceAction, reason: str) -> ApiProblem:
    """403 naming who may not do what, and how to be allowed."""
    because = f" ({reason})" if reason else ""
    return ApiProblem(
        403,
        "forbidden",
        f"{user.username} may not {action.describe()}{because}: bind it to a Role that "
        f"grants {action.verb!r} on {action.resource}.{action.group}",
    )


class SubmissionApi:
    def __init__(
        self,
        *,
        auth: Authenticates,
        reviewer: AccessReviewer,
        kube: JobsApi,
        namespaces: Sequence[str],
    ) -> None:
        self.auth, self.reviewer, self.kube = auth, reviewer, kube
        #: The namespaces served; empty: all of them.
        self.namespaces = frozenset(namespaces)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/jobs/{namespace}", self.create)
        router.add_get("/v1/jobs/{namespace}/{name}", self.get)
        router.add_post("/v1/jobs/{namespace}/{name}/cancel", self.cancel)

    async def create(self, request: web.Request) -> web.Response:
        user, namespace = await self._allowed(request, "create")
        body = await parse(request, SubmitRequest)
        manifest = job_manifest(body, user.username)
        created = await _kube(
            "create", namespace, body.name, self.kube.create(JOBS.path(namespace), manifest)
        )
        view = job_view(created)
        log.info("job %s/%s submitted by %s", namespace, view.name, user.username)
        return reply(view, status=201)

    async def get(self, request: web.Request) -> web.Response:
        _, namespace = await self._allowed(request, "get")
        return reply(job_view(await self._read(namespace, request.match_info["name"])))

    async def cancel(self, request: web.Request) -> web.Response:
        """Set ``spec.cancel`` on an unfinished Job (conditionally on the version read,
        so that a Job that finished meanwhile is not written)."""
        user, namespace = await self._allowed(request, "patch")
        name = request.match_info["name"]
        for _ in range(CANCEL_TRIES):
            job = await self._read(namespace, name)
            view = job_view(job)
            phase = view.status.phase if view.status else None
            if is_terminal(phase):
                raise ApiProblem(
                    409,
                    "job_finished",
                    f"job {namespace}/{name} already ended {phase}: nothing to cancel",
                )
            if view.spec.cancel:
                return reply(view)
            version = job["metadata"].get("resourceVersion")
            patch = {"metadata": {"resourceVersion": version}, "spec": {"cancel": True}}
            call = self.kube.patch(JOBS.path(namespace, name), patch, MERGE_PATCH)
            try:
                patched = await _kube("patch", namespace, name, call)
            except ApiError as exc:
                if exc.conflict:
                    continue  # it changed since it was read: decide again
                raise
            log.info("job %s/%s cancelled by %s", namespace, name, user.username)
            return reply(job_view(patched))
        raise ApiProblem(
            503, "job_busy", f"job {namespace}/{name} keeps changing; retry", retry_after=1
        )

    async def _allowed(self, request: web.Request, verb: str) -> tuple[ReviewUser, str]:
        """The caller, if it may ``verb`` the request's job (or jobs) in its namespace."""
        identity = await self.auth.identify(
            request.headers.get("Authorization"), peer=request.remote or ""
        )
        namespace, name = request.match_info["namespace"], request.match_info.get("name")
        # Names go into the operator's own request paths: nothing but names ('..' is not).
        if len(namespace) > DNS1123_LABEL_MAX or not NAMESPACE.fullmatch(namespace):
            raise ApiProblem(404, "namespace_not_served", f"{namespace!r} is not a namespace name")
        if name is not None and (len(name) > NAME_MAX or not JOB_NAME.fullmatch(name)):
            raise ApiProblem(404, "unknown_job", f"{name!r} is not a Job name", "name")
        if self.namespaces and namespace not in self.namespaces:
            raise ApiProblem(
                404,
                "namespace_not_served",
                f"this operator does not serve namespace {namespace!r}: send the request to "
                "the operator that does, or create the Job with kubectl",
            )
        user = review_user(identity)
        action = ResourceAction(verb, API_GROUP, JOBS.plural, namespace, name)
        decision = await self.reviewer.review(user, action)
        if not decision.allowed:
            raise refusal(user, action, decision.reason)
        return user, namespace

    async def _read(self, namespace: str, name: str) -> dict[str, Any]:
        return await _kube("get", namespace, name, self.kube.get(JOBS.path(namespace, name)))


async def _kube(
    verb: str, namespace: str, name: str | None, call: Awaitable[dict[str, Any]]
) -> dict[str, Any]:
    """The answer of a call made with the operator's credentials; its refusals become
    the caller's answer, its outages (and conflicts) go on as they are."""
    try:
        return await call
    except ApiError as exc:
        problem = _kube_problem(exc, verb, namespace, name)
        if problem is None:
            raise
        raise problem from exc


def _kube_problem(exc: ApiError, verb: str, namespace: str, name: str | None) -> ApiProblem | None:
    """The answer for the API server's refusal of the operator's own request; None for
    its outages (5xx, 429: the middleware answers 503) and conflicts."""
    job = f"job {namespace}/{name}" if name else f"the job in namespace {namespace}"
    if exc.not_found and verb == "create":
        return ApiProblem(404, "not_found", f"cannot create {job}: {exc.message}")
    if exc.not_found:
        return ApiProblem(404, "unknown_job", f"no {job}", "name")
    if exc.already_exists:
        return ApiProblem(409, "job_exists", f"{job} already exists: choose another name", "name")
    if exc.status in (400, 422):
        return ApiProblem(422, "invalid_job", f"the API server refused {job}: {exc.message}")
    if exc.status == 403:
        log.error("the operator may not %s jobs in %s: %s", verb, namespace, exc.message)
        return ApiProblem(
            500,
            "operator_forbidden",
            f"the operator's own service account may not {verb} jobs.shiftboss.io in "
            f"namespace {namespace!r}: grant it that verb in its RBAC",
        )
    return None
