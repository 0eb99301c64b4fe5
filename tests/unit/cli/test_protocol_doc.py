"""The checked-in OpenAPI document of the worker protocol matches the models."""

from pathlib import Path

from shiftboss.protocol_doc import ENDPOINTS, main, render, worker_api_document

DOC = Path(__file__).resolve().parents[3] / "docs" / "worker-api.openapi.json"


def test_checked_in_document_is_up_to_date():
    assert DOC.read_text() == render(), "run `make openapi`"
    assert main([str(DOC), "--check"]) == 0


def test_check_fails_on_drift(tmp_path):
    stale = tmp_path / "api.json"
    stale.write_text("{}")
    assert main([str(stale), "--check"]) == 1


def test_every_endpoint_and_model_is_described():
    doc = worker_api_document()
    for method, path, *_ in ENDPOINTS:
        operation = doc["paths"][path][method]
        assert operation["responses"]["409"]["content"]["application/json"]["schema"][
            "$ref"
        ].endswith("/ErrorResponse")
    schemas = doc["components"]["schemas"]
    assert {"RegisterRequest", "Assignment", "FailReport", "ErrorResponse"} <= set(schemas)
    # The wire rule "unknown fields are refused" is part of the contract.
    assert schemas["RegisterRequest"]["additionalProperties"] is False
