"""The OpenAPI document of the operator's HTTP API, generated from its models: the
worker protocol (``worker_runtime.protocol``), the submission API under ``/v1/jobs``
(``shiftboss.workerapi.submission_models``) and the read views
(``shiftboss.workerapi.view_models``).

``python -m shiftboss.protocol_doc docs/worker-api.openapi.json`` writes it; ``--check``
exits 1 when the checked-in file differs (a unit test runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from shiftboss.api.common import DNS1123_LABEL, DNS1123_LABEL_MAX
from shiftboss.workerapi.submission_models import JobView, SubmitRequest
from shiftboss.workerapi.view_models import UID_PATTERN, PoolWorkersView, QueueView
from worker_runtime import protocol as p

#: (method, path, summary, request model, response model, path parameters)
ENDPOINTS: list[tuple[str, str, str, type[BaseModel] | None, type[BaseModel], tuple[str, ...]]] = [
    (
        "post",
        "/v1/workers/register",
        "Register a worker and its skills.",
        p.RegisterRequest,
        p.RegisterResponse,
        (),
    ),
    (
        "post",
        "/v1/workers/{worker_id}/claim",
        "Long-poll for job attempts.",
        p.ClaimRequest,
        p.ClaimResponse,
        ("worker_id",),
    ),
    (
        "post",
        "/v1/workers/{worker_id}/heartbeat",
        "Renew the leases of running attempts.",
        p.HeartbeatRequest,
        p.HeartbeatResponse,
        ("worker_id",),
    ),
    (
        "post",
        "/v1/attempts/{attempt_id}/progress",
        "Report progress.",
        p.ProgressReport,
        p.Ack,
        ("attempt_id",),
    ),
    (
        "post",
        "/v1/attempts/{attempt_id}/complete",
        "Report success with a result.",
        p.CompleteReport,
        p.Ack,
        ("attempt_id",),
    ),
    (
        "post",
        "/v1/attempts/{attempt_id}/fail",
        "Report a failure.",
        p.FailReport,
        p.Ack,
        ("attempt_id",),
    ),
    (
        "post",
        "/v1/attempts/{attempt_id}/release",
        "Give an attempt back without an outcome (not counted against maxAttempts).",
        p.ReleaseReport,
        p.Ack,
        ("attempt_id",),
    ),
]

ERRORS = {
    "400": "Malformed JSON (not JSON, NaN, nested deeper than 64 levels).",
    "401": "No token, or a token the API server does not accept for audience shiftboss.",
    "403": "The token may not act for this pool or worker.",
    "404": "Unknown pool, worker not registered (register again), or unknown attempt.",
    "409": "The attempt is no longer current (drop it and report nothing more), or the "
    "worker id is registered by another identity.",
    "413": "Body over 1 MiB, or a result over the inline limit (the attempt was failed).",
    "415": "The body is not application/json.",
    "422": "Valid JSON that breaks the request model, or a skill schema that cannot be "
    "evaluated safely; error.field names the field.",
    "429": "Too many requests or registrations, or a limit per pool or identity reached; "
    "the Retry-After header says when to try again.",
    "503": "The operator cannot act now (the Kubernetes API server is unavailable, or this "
    "replica is a standby); nothing changed, retry.",
}


#: The submission API: (method, path, operationId, summary, request model, success
#: status, path parameters); every answer is a JobView.
SUBMISSIONS: list[tuple[str, str, str, str, type[BaseModel] | None, str, tuple[str, ...]]] = [
    (
        "post",
        "/v1/jobs/{namespace}",
        "createJob",
        "Create a Job (the caller needs RBAC to create jobs.shiftboss.io in the namespace).",
        SubmitRequest,
        "201",
        ("namespace",),
    ),
    (
        "get",
        "/v1/jobs/{namespace}/{name}",
        "getJob",
        "Read a Job and its status (the caller needs RBAC to get it).",
        None,
        "200",
        ("namespace", "name"),
    ),
    (
        "post",
        "/v1/jobs/{namespace}/{name}/cancel",
        "cancelJob",
        "Cancel an unfinished Job (the caller needs RBAC to patch it).",
        None,
        "200",
        ("namespace", "name"),
    ),
]

SUBMISSION_ERRORS = {
    "400": "Malformed JSON (not JSON, NaN, nested deeper than 64 levels).",
    "401": "No token, or a token the API server does not accept for audience shiftboss.",
    "403": "RBAC does not allow the caller this verb on jobs.shiftboss.io in the namespace; "
    "error.message names the verb, resource and namespace.",
    "404": "A namespace this operator does not serve, or no such Job.",
    "409": "A Job of that name exists (create), or the Job already ended (cancel).",
    "413": "Body over 1 MiB.",
    "415": "The body is not application/json.",
    "422": "Valid JSON that breaks the request model (unknown fields included, at any "
    "depth), or a Job the API server refuses; error.field names the field.",
    "429": "Too many failed authentications from this address; see Retry-After.",
    "503": "The operator cannot act now (the Kubernetes API server is unavailable, or this "
    "replica is a standby); nothing changed, retry.",
}


#: The read views' path parameters, with the forms the operator accepts (400 otherwise).
VIEW_PARAMETERS: dict[str, dict[str, Any]] = {
    "namespace": {"type": "string", "pattern": DNS1123_LABEL, "maxLength": DNS1123_LABEL_MAX},
    "uid": {"type": "string", "pattern": f"^{UID_PATTERN}$"},
}

#: The read views: (path, operationId, summary, answer, path parameters); no token (the
#: UID is the key: see ``shiftboss.workerapi.views``).
VIEWS: list[tuple[str, str, str, type[BaseModel], tuple[str, ...]]] = [
    (
        "/v1/queue/{namespace}/{uid}",
        "getQueuePosition",
        "A Job's position in its pool's queue and why it waits (uid: the Job's metadata.uid).",
        QueueView,
        ("namespace", "uid"),
    ),
    (
        "/v1/pools/{namespace}/{uid}/workers",
        "listPoolWorkers",
        "A WorkerPool's registered workers, skills and busy slots (uid: its metadata.uid).",
        PoolWorkersView,
        ("namespace", "uid"),
    ),
]

VIEW_ERRORS = {
    "400": "A namespace or uid that is not one (a name where the uid goes); error.field "
    "names which.",
    "404": "No Job or WorkerPool of that uid in that namespace known to this operator.",
    "429": "Too many reads from this address; see Retry-After.",
    "503": "This replica is a standby; retry.",
}


def _schemas(models: set[type[BaseModel]]) -> dict[str, Any]:
    _, schemas = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    defs: dict[str, Any] = schemas["$defs"]
    return defs


def _submission_schema(schema: Any) -> Any:
    """A Job model's schema for the submission API: no Kubernetes extensions (CEL rules,
    list types), and unknown fields refused at every depth, as the API does."""
    if isinstance(schema, list):
        return [_submission_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned = {k: _submission_schema(v) for k, v in schema.items() if not k.startswith("x-")}
    if "properties" in cleaned:
        cleaned.setdefault("additionalProperties", False)
    return cleaned


def _merge(into: dict[str, Any], schemas: dict[str, Any]) -> None:
    for name, schema in schemas.items():
        if into.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name}")


def worker_api_document() -> dict[str, Any]:
    models = {m for _, _, _, req, resp, _ in ENDPOINTS for m in (req, resp) if m} | {
        p.ErrorResponse
    }
    all_schemas = _schemas(models)
    _merge(all_schemas, _submission_schema(_schemas({SubmitRequest, JobView})))
    _merge(all_schemas, _schemas({QueueView, PoolWorkersView}))

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {"schema": ref(model)}}}

    paths: dict[str, Any] = {}
    for method, path, summary, request, response, params in ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": summary,
            "operationId": path.rsplit("/", 1)[-1],
            "security": [{"serviceAccountToken": []}],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in params
            ],
            "responses": {
                "200": json_body(response, "OK"),
                **{code: json_body(p.ErrorResponse, text) for code, text in ERRORS.items()},
            },
        }
        if request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(request)}},
            }
        paths.setdefault(path, {})[method] = operation
    for method, path, operation_id, summary, request, success, params in SUBMISSIONS:
        operation = {
            "summary": summary,
            "operationId": operation_id,
            "tags": ["submission"],
            "security": [{"serviceAccountToken": []}],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in params
            ],
            "responses": {
                success: json_body(JobView, "The Job."),
                **{
                    code: json_body(p.ErrorResponse, text)
                    for code, text in SUBMISSION_ERRORS.items()
                },
            },
        }
        if request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(request)}},
            }
        paths.setdefault(path, {})[method] = operation
    for path, operation_id, summary, answer, params in VIEWS:
        paths.setdefault(path, {})["get"] = {
            "summary": summary,
            "operationId": operation_id,
            "tags": ["views"],
            "security": [],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": VIEW_PARAMETERS[name]}
                for name in params
            ],
            "responses": {
                "200": json_body(answer, "The view."),
                **{code: json_body(p.ErrorResponse, text) for code, text in VIEW_ERRORS.items()},
            },
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shiftboss worker protocol and submission API",
            "version": p.PROTOCOL_VERSION,
            "description": (p.__doc__ or "").strip(),
        },
        "paths": paths,
        "components": {
            "schemas": all_schemas,
            "securitySchemes": {
                "serviceAccountToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A service-account token with audience shiftboss.",
                }
            },
        },
    }


def render() -> str:
    return json.dumps(worker_api_document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shiftboss.protocol_doc", description=__doc__)
    parser.add_argument("path", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.path.read_text() if args.path.exists() else ""
        if current != text:
            print(f"{args.path} is out of date: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text)
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
