"""The OpenAPI document and POST /predict agree: what the schema refuses the service refuses (with a
readable 422), and what the service refuses the schema does not allow. Each case was a real
disagreement: schemathesis found the empty batch and the boolean id
(tests/integration/serving/test_serve_contract.py runs it); the id aliases and the id on a
positional batch were found by reading the document, and stay here because schemathesis never
guesses those key names, so only these tests would notice them coming back."""

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


def body_schema(client: Client) -> dict[str, Any]:
    document = client.get("/openapi.json").get_json()
    schema: dict[str, Any] = document["paths"]["/predict"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ([], "the batch is empty: send at least one record"),
        ({"features": []}, "features: expected exactly 10 features (x1..x10), got 0"),
        ({"features": [[]]}, "features[0]: expected exactly 10 features (x1..x10), got 0"),
    ],
    ids=["empty-list", "empty-features", "empty-vector-in-batch"],
)
def test_an_empty_batch_is_a_422_saying_so(client: Client, body: object, detail: str) -> None:
    status, payload = post(client, body)
    assert status == 422, payload
    assert payload["error"] == "invalid_request"
    assert detail in payload["detail"]


def test_the_schema_says_a_batch_has_1_to_max_batch_records(client: Client) -> None:
    """The document allowed ``[]`` (no minItems) and any length; the service refuses both. Every
    batch form now carries the limits the parser enforces (max_batch is 50 in these tests)."""
    arrays = [a for a in body_schema(client)["anyOf"] if a.get("type") == "array"]
    records = [a for a in arrays if a["items"] == {"$ref": "#/components/schemas/NamedRecord"}]
    matrix = [a for a in arrays if a["items"].get("type") == "array"]
    positional = components(client)["PositionalBatch"]["properties"]["features"]
    for batch in [*records, *matrix, positional]:
        assert (batch["minItems"], batch["maxItems"]) == (1, 50), batch
    assert (len(records), len(matrix)) == (1, 1)
    vector = components(client)["PositionalRecord"]["properties"]["features"]
    assert (vector["minItems"], vector["maxItems"]) == (10, 10)


def test_the_positional_batch_has_no_id_in_the_schema_or_the_service(client: Client) -> None:
    """An id names one record. The document allowed ``{"id": .., "features": [[..], ..]}``, which
    the service refused; now neither has an id in the batch form, not even null."""
    batch = components(client)["PositionalBatch"]
    assert set(batch["properties"]) == {"features"}
    assert batch["additionalProperties"] is False
    for key in ("id", "customer_id"):
        status, payload = post(client, {"features": [[1.0] * 10] * 2, key: None})
        assert status == 422, payload
        assert "id applies to a single vector" in payload["detail"]
        assert payload["errors"] == [{"loc": key, "msg": "not allowed with a batch"}]


@pytest.mark.parametrize("model", ["NamedRecord", "PositionalRecord"])
def test_the_schema_names_every_id_alias_and_allows_one(client: Client, model: str) -> None:
    """The service accepts customer_id / respondent_id (the seed's clients send them); the document
    forbade them as unknown properties. Now it names them, and at most one may be given."""
    schema = components(client)[model]
    assert {"id", "customer_id", "respondent_id"} <= set(schema["properties"])
    pairs = {tuple(r["required"]) for r in schema["not"]["anyOf"]}
    assert pairs == {
        ("id", "customer_id"),
        ("id", "respondent_id"),
        ("customer_id", "respondent_id"),
    }


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (RECORD | {"id": 1, "customer_id": 2}, "customer_id: a second id"),
        (
            [RECORD | {"customer_id": 1, "respondent_id": None}],
            "records[0].respondent_id: a second",
        ),
        ({"features": [1.0] * 10, "id": 1, "respondent_id": 1}, "the id is given 2 times"),
    ],
    ids=["named", "named-in-batch", "positional"],
)
def test_two_ids_for_one_record_are_a_422(client: Client, body: object, detail: str) -> None:
    status, payload = post(client, body)
    assert status == 422, payload
    assert detail in payload["detail"]


def test_every_id_alias_is_echoed(client: Client) -> None:
    status, payload = post(
        client,
        [RECORD | {"id": "a"}, RECORD | {"customer_id": "b"}, RECORD | {"respondent_id": 3}],
    )
    assert status == 200, payload
    assert [p["id"] for p in payload["predictions"]] == ["a", "b", 3]
