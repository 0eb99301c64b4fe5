"""What the client raises: a job's own failure (``JobFailed``, ``JobCancelled``), a wait
that ran out of time (``WaitTimeout``), a rerun the job's state does not allow
(``RerunRefused``: ``JobNotFinished``, ``JobCannotRunAgain``), and a request the API
server refused (``RequestFailed`` and its ``JobNotFound`` / ``PermissionDenied``), each
saying which object it is about and what to do."""

from __future__ import annotations

from typing import Literal

from shiftboss.api.job import Job
from shiftboss.kube.client import ApiError

#: The RBAC verbs the client uses on ``jobs.shiftboss.io``.
Verb = Literal["create", "get", "list", "watch", "patch"]

RESOURCE = "jobs.shiftboss.io"


class ShiftbossError(Exception):
    """Base of every error the client raises."""


class JobFailed(ShiftbossError):
    """The job ended ``Failed``: ``error_type`` and ``message`` are the failing attempt's
    (``FatalError``, ``TimedOut``, ``LeaseExpired``, ...); ``job`` is the finished Job."""

    def __init__(self, job: Job, error_type: str, message: str) -> None:
        attempts = job.status.attempt if job.status else 0
        super().__init__(
            f"job {job.name} in namespace {job.namespace} failed after {attempts} "
            f"attempt(s): {error_type}: {message}"
        )
        self.job, self.error_type, self.message = job, error_type, message


class JobCancelled(ShiftbossError):
    """The job ended ``Cancelled`` (its ``spec.cancel`` was set)."""

    def __init__(self, job: Job) -> None:
        message = (job.status.message if job.status else None) or "cancelled"
        super().__init__(f"job {job.name} in namespace {job.namespace} was cancelled: {message}")
        self.job, self.message = job, message


class WaitTimeout(ShiftbossError, TimeoutError):
    """The job did not finish in time. It keeps running: wait again, or cancel it."""

    def __init__(self, job: Job, timeout: float) -> None:
        phase = (job.status.phase if job.status else None) or "Pending"
        super().__init__(
            f"job {job.name} in namespace {job.namespace} did not finish within {timeout:g}s "
            f"(phase {phase}); it keeps running: wait for it again, or cancel it"
        )
        self.job, self.timeout, self.phase = job, timeout, str(phase)


class RerunRefused(ShiftbossError):
    """``rerun`` refused to ask for another run of ``job``: it has not finished yet
    (``JobNotFinished``), or it was cancelled and can never run again
    (``JobCannotRunAgain``). Nothing was changed."""

    def __init__(self, job: Job, message: str) -> None:
        super().__init__(message)
        self.job = job


class JobNotFinished(RerunRefused):
    """The job is still waiting, running or suspended, or a rerun of it has been
    requested and has not finished: only a finished job can run again."""

    def __init__(self, job: Job, requested_run: int | None = None) -> None:
        phase = (job.status.phase if job.status else None) or "Pending"
        what = f"job {job.name} in namespace {job.namespace}"
        if requested_run is None:
            message = (
                f"{what} has not finished (phase {phase}): only a finished job can run "
                "again; wait for it, or cancel it and create a new Job"
            )
        else:
            message = (
                f"{what} already has run {requested_run} requested, and that run has not "
                "finished: wait for it"
            )
        super().__init__(job, message)
        self.phase = str(phase)


class JobCannotRunAgain(RerunRefused):
    """The job was cancelled (``spec.cancel`` is true): it can never run again."""

    def __init__(self, job: Job) -> None:
        super().__init__(
            job,
            f"job {job.name} in namespace {job.namespace} was cancelled (spec.cancel is "
            "true) and cannot run again: create a new Job",
        )


class RequestFailed(ShiftbossError):
    """The API server refused a request; ``status`` and ``reason`` are its answer's."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


class JobNotFound(RequestFailed, LookupError):
    """No Job of that name in the namespace (or it was deleted while being waited for)."""


class PermissionDenied(RequestFailed, PermissionError):
    """RBAC does not allow the verb on ``jobs.shiftboss.io`` in the namespace."""


def request_error(error: ApiError, verb: Verb, namespace: str, name: str | None) -> RequestFailed:
    """``error`` (the API server's answer to ``verb``) as an error naming the object and
    the fix."""
    what = f"job {name} in namespace {namespace}" if name else f"jobs in namespace {namespace}"
    said = f"(the API server said: {error.message})"
    if error.status == 404 and name and verb != "create":
        return JobNotFound(
            f"job {name} not found in namespace {namespace} {said}", error.status, error.reason
        )
    if error.status == 404:
        message = (
            f"cannot {verb} {what}: the namespace does not exist or the Shiftboss CRDs are "
            f"not installed (kubectl apply -f crds/, or install the Helm chart) {said}"
        )
    elif error.status == 403:
        return PermissionDenied(
            f"cannot {verb} {what}: RBAC does not allow verb {verb!r} on {RESOURCE} in "
            f"namespace {namespace}; ask for a Role granting it {said}",
            error.status,
            error.reason,
        )
    elif error.status == 401:
        message = (
            f"cannot {verb} {what}: the API server did not accept the credentials; log in "
            f"again or check the kubeconfig's user {said}"
        )
    elif error.already_exists:
        message = (
            f"cannot create {what}: a Job of that name exists; choose another name or pass "
            f"generate_name {said}"
        )
    elif error.status == 422:
        message = f"the API server refused {what} as invalid: {error.message}"
    else:
        message = f"cannot {verb} {what}: {error}"
    return RequestFailed(message, error.status, error.reason)
