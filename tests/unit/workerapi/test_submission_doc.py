"""The submission API in the operator's OpenAPI document (``make openapi``; the
document's drift test is ``tests/unit/cli/test_protocol_doc.py``)."""

from __future__ import annotations

import json
from typing import Any

from shiftboss.protocol_doc import SUBMISSIONS, worker_api_document


def test_every_operation_with_its_answers():
    doc = worker_api_document()
    operations = {
        doc["paths"][path][method]["operationId"]: doc["paths"][path][method]
        for method, path, *_ in SUBMISSIONS
    }
    assert set(operations) == {"createJob", "getJob", "cancelJob"}
    create = operations["createJob"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SubmitRequest"
    )
    assert create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/JobView"
    )
    assert "requestBody" not in operations["getJob"]
    for operation in operations.values():
        assert {"400", "401", "403", "404", "422", "503"} <= set(operation["responses"])
        assert operation["security"] == [{"serviceAccountToken": []}]


def _objects(schema: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(schema, dict):
        if "properties" in schema:
            found.append(schema)
        for value in schema.values():
            found.extend(_objects(value))
    elif isinstance(schema, list):
        for item in schema:
            found.extend(_objects(item))
    return found


def test_job_schemas_refuse_unknown_fields_and_carry_no_kubernetes_extensions():
    schemas = worker_api_document()["components"]["schemas"]
    for name in ("SubmitRequest", "JobView", "JobSpec", "JobStatus", "RetryPolicy", "Backoff"):
        assert "x-kubernetes" not in json.dumps(schemas[name]), name
        for obj in _objects(schemas[name]):
            assert obj["additionalProperties"] is False, name
    request = schemas["SubmitRequest"]["properties"]
    assert {"pool", "skill", "params", "name", "generateName", "timeoutSeconds"} <= set(request)
    assert schemas["SubmitRequest"]["required"] == ["pool", "skill"]
