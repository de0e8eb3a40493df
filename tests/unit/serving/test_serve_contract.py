"""The OpenAPI document and POST /predict agree: what the schema refuses the service refuses (with a
readable 422), and what the service refuses the schema does not allow. Each case here is one
disagreement schemathesis found (tests/integration/serving/test_serve_contract.py runs it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import Client

from personas.catalogue import FEATURES

RECORD: dict[str, Any] = {name: 1.0 for name in FEATURES}
ID_REASON = "must be a string or an integer (not a boolean or a number with a decimal point)"


def post(client: Client, body: object) -> tuple[int, dict[str, Any]]:
    response = client.post("/predict", json=body)
    return response.status_code, json.loads(response.get_data())


def components(client: Client) -> dict[str, Any]:
    schemas: dict[str, Any] = client.get("/openapi.json").get_json()["components"]["schemas"]
    return schemas


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ([RECORD | {"id": False}], "records[0].id"),
        ([RECORD | {"id": True}], "records[0].id"),
        (RECORD | {"id": True}, "id"),
        (RECORD | {"customer_id": False}, "customer_id"),
        ([RECORD | {"respondent_id": 1.0}], "records[0].respondent_id"),
        ({"features": [1.0] * 10, "id": True}, "id"),
        ({"features": [1.0] * 10, "customer_id": 2.0}, "customer_id"),
    ],
    ids=[
        "false-in-batch",
        "true-in-batch",
        "true-alone",
        "false-as-customer_id",
        "float-as-respondent_id",
        "true-positional",
        "float-positional",
    ],
)
def test_a_boolean_or_decimal_id_is_a_422_naming_the_id(
    client: Client, body: object, loc: str
) -> None:
    """Lax pydantic labelled ``"id": false`` as the record with id 0 — a different customer."""
    status, payload = post(client, body)
    assert status == 422, payload
    assert payload["error"] == "invalid_request"
    assert payload["errors"] == [{"loc": loc, "msg": ID_REASON}]
    assert f"{loc}: {ID_REASON}" in payload["detail"]


def test_string_and_integer_ids_are_echoed_unchanged(client: Client) -> None:
    status, payload = post(client, [RECORD | {"id": "0"}, RECORD | {"id": 0}, RECORD])
    assert status == 200, payload
    assert [p["id"] for p in payload["predictions"]] == ["0", 0, None]


def test_the_schema_says_an_id_is_a_string_or_an_integer(client: Client) -> None:
    """The documented id type is the one the service accepts: JSON Schema's ``integer`` never
    matches a boolean, so the service must not accept one either."""
    id_schema = components(client)["NamedRecord"]["properties"]["id"]
    alternatives = id_schema["anyOf"]
    types = [t.get("type") for t in alternatives[0]["anyOf"]] + [alternatives[1]["type"]]
    assert types == ["string", "integer", "null"]
