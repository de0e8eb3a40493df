"""The OpenAPI 3.1 description of the service, generated from the pydantic models it validates with.

Generated, not hand-written, so the document cannot drift from what the code accepts: the request
schema is the union of the models the parser validates with (``request_models``), with the same
batch limits. tests/integration/serving/test_serve_contract.py runs schemathesis with every check
against a real ``persona serve`` to prove the document and the service agree both ways.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from serving.schemas import (
    ErrorResponse,
    HealthResponse,
    IndexResponse,
    ModelResponse,
    PredictResponse,
    request_models,
)
from serving.settings import ServeSettings

__all__ = ["build_openapi"]

_REF = "#/components/schemas/{model}"


def _json(
    schema_ref: dict[str, Any], description: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": schema_ref}},
    }
    if headers:
        response["headers"] = headers
    return response


#: Sent with every answer that labels or describes a model (the docs promise it).
_MODEL_VERSION_HEADER = {
    "X-Model-Version": {
        "description": "The model version that answered (0 = vendor centroids).",
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def build_openapi(serve: ServeSettings) -> dict[str, Any]:
    """The document served at ``GET /openapi.json``."""
    models: list[type[BaseModel]] = [
        PredictResponse,
        HealthResponse,
        ModelResponse,
        ErrorResponse,
        IndexResponse,
    ]
    keys: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "serialization") for m in models]
    refs, definitions = models_json_schema(keys, ref_template=_REF)
    components: dict[str, Any] = dict(definitions.get("$defs", {}))
    body = request_models(serve.max_batch).body.json_schema(ref_template=_REF)
    components.update(body.pop("$defs", {}))
    body["description"] = (
        "One record or a batch: a named record, a list of named records, "
        '{"features": [x1..x10]} / {"features": [[x1..x10], ...]}, a bare list of 10 numbers or '
        f"a list of such lists. 1 to {serve.max_batch} records and at most "
        f"{serve.max_body_bytes} bytes (413 above)."
    )
    ref = {key[0]: refs[key] for key in keys}
    error = _json(ref[ErrorResponse], "Error with a readable reason")
    # Every route can answer a bug as a JSON 500 (never a traceback): documented so a client
    # knows its shape; the schemathesis test still fails on any 500 (not_a_server_error).
    server_error = {"500": _json(ref[ErrorResponse], "Unexpected server error (logged)")}
    example = {
        "x1": 1.2,
        "x2": -0.4,
        "x3": 3.1,
        "x4": 0.0,
        "x5": 2.2,
        "x6": -1.7,
        "x7": 0.9,
        "x8": 4.0,
        "x9": -2.5,
        "x10": 1.1,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Persona Stream prediction service",
            "version": "1",
            "description": (
                "Labels survey participants with the client's marketing personas using the "
                "registry's champion model (nearest centroid), the same rule as the stream."
            ),
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Label one record or a batch",
                    "operationId": "predict",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": body, "example": example}},
                    },
                    "responses": {
                        "200": _json(
                            ref[PredictResponse],
                            "Predictions in request order",
                            _MODEL_VERSION_HEADER,
                        ),
                        "400": _json(ref[ErrorResponse], "Content-Length is not a number"),
                        "413": _json(ref[ErrorResponse], "The body is over max_body_bytes"),
                        "422": error,
                        **server_error,
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness and model status of the answering worker",
                    "operationId": "health",
                    "responses": {"200": _json(ref[HealthResponse], "Status"), **server_error},
                }
            },
            "/model": {
                "get": {
                    "summary": "The model this worker serves",
                    "operationId": "model",
                    "responses": {
                        "200": _json(ref[ModelResponse], "Model", _MODEL_VERSION_HEADER),
                        **server_error,
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics, summed over every worker process",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **server_error,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {
                        "200": _json({"type": "object"}, "OpenAPI 3.1 document"),
                        **server_error,
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "The service's name and routes",
                    "operationId": "index",
                    "responses": {"200": _json(ref[IndexResponse], "Routes"), **server_error},
                }
            },
        },
        "components": {"schemas": components},
    }
