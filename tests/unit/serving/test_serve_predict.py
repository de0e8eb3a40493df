"""POST /predict: every accepted body shape, the labels, and every kind of bad input → 4xx."""

from __future__ import annotations

import json

import numpy as np
import pytest
from werkzeug.test import Client

from personas.catalogue import FEATURES, Catalogue
from personas.model import CentroidModel

RNG = np.random.default_rng(7)


def named(row: np.ndarray, **extra: object) -> dict[str, object]:
    return {name: float(v) for name, v in zip(FEATURES, row, strict=True)} | extra


def post(client: Client, body: object) -> tuple[int, dict]:
    response = client.post("/predict", json=body)
    return response.status_code, json.loads(response.get_data())


def expected(model: CentroidModel, rows: np.ndarray) -> list[tuple[int, str, float, float, bool]]:
    labels = model.label(rows)
    return [
        (
            int(labels.persona_id[i]),
            model.persona_names[labels.index[i]],
            float(labels.distance[i]),
            float(labels.margin[i]),
            bool(labels.is_outlier[i]),
        )
        for i in range(len(labels))
    ]


def got(payload: dict) -> list[tuple[int, str, float, float, bool]]:
    return [
        (p["persona_id"], p["persona_name"], p["distance"], p["margin"], p["is_outlier"])
        for p in payload["predictions"]
    ]


@pytest.fixture
def rows(catalogue: Catalogue) -> np.ndarray:
    """Points around each vendor centroid plus one far outlier."""
    near = np.repeat(catalogue.centroids, 4, axis=0) + RNG.normal(
        0, 2.0, (4 * len(catalogue.personas), 10)
    )
    return np.vstack([near, np.full((1, 10), 60.0)])


def test_named_batch_labels_like_the_model(client: Client, vendor_model: CentroidModel, rows):
    status, payload = post(client, [named(r, id=f"r{i}") for i, r in enumerate(rows)])
    assert status == 200
    assert payload["model_version"] == 0
    assert payload["count"] == len(rows)
    assert got(payload) == expected(vendor_model, rows)
    assert [p["id"] for p in payload["predictions"]] == [f"r{i}" for i in range(len(rows))]
    assert {p["model_version"] for p in payload["predictions"]} == {0}
    assert payload["predictions"][-1]["is_outlier"] is True
    assert sum(p["is_outlier"] for p in payload["predictions"]) >= 1


def test_vendor_centroids_get_their_own_persona(client: Client, catalogue: Catalogue):
    status, payload = post(client, {"features": catalogue.centroids.tolist()})
    assert status == 200
    assert [p["persona_id"] for p in payload["predictions"]] == list(catalogue.ids)
    assert [p["persona_name"] for p in payload["predictions"]] == list(catalogue.names)
    assert [p["distance"] for p in payload["predictions"]] == pytest.approx([0.0] * 3, abs=1e-5)


@pytest.mark.parametrize(
    "shape",
    ["named_one", "named_list", "features_one", "features_many", "bare_vector", "bare_matrix"],
)
def test_every_body_shape_gives_the_same_labels(client: Client, vendor_model, rows, shape: str):
    one = rows[:1]
    bodies = {
        "named_one": (named(rows[0]), one),
        "named_list": ([named(r) for r in rows], rows),
        "features_one": ({"features": rows[0].tolist(), "customer_id": "123"}, one),
        "features_many": ({"features": rows.tolist()}, rows),
        "bare_vector": (rows[0].tolist(), one),
        "bare_matrix": (rows.tolist(), rows),
    }
    body, matrix = bodies[shape]
    status, payload = post(client, body)
    assert status == 200, payload
    assert got(payload) == expected(vendor_model, matrix)
    if shape == "features_one":
        assert payload["predictions"][0]["id"] == "123"


def test_integer_features_and_id_aliases_are_accepted(client: Client):
    record = {name: i for i, name in enumerate(FEATURES)} | {"respondent_id": 42}
    status, payload = post(client, record)
    assert status == 200
    assert payload["predictions"][0]["id"] == 42


BAD_BODIES = [
    ("missing feature", {f"x{i}": 1.0 for i in range(1, 10)}, "x10: Field required"),
    ("unknown field", {**{f"x{i}": 1.0 for i in range(1, 11)}, "x11": 2}, "x11: unknown field"),
    (
        "string feature",
        {**{f"x{i}": 1.0 for i in range(1, 11)}, "x3": "7"},
        "x3: Input should be a valid number",
    ),
    (
        "bool feature",
        {**{f"x{i}": 1.0 for i in range(1, 11)}, "x3": True},
        "x3: Input should be a valid number",
    ),
    (
        "null feature",
        {**{f"x{i}": 1.0 for i in range(1, 11)}, "x5": None},
        "x5: Input should be a valid number",
    ),
    (
        "out of range",
        {**{f"x{i}": 1.0 for i in range(1, 11)}, "x2": 1000.5},
        "x2: Input should be less than or equal to 1000",
    ),
    ("nine numbers", [1.0] * 9, "features: expected exactly 10 features (x1..x10), got 9"),
    (
        "eleven numbers",
        {"features": [1.0] * 11},
        "features: expected exactly 10 features (x1..x10), got 11",
    ),
    (
        "ragged matrix",
        {"features": [[1.0] * 10, [1.0] * 3]},
        "features[1]: expected exactly 10 features",
    ),
    (
        "bad record in batch",
        [{f"x{i}": 1.0 for i in range(1, 11)}, {"x1": 1.0}],
        "records[1].x2: Field required",
    ),
    ("empty list", [], "the batch is empty"),
    ("empty features", {"features": []}, "features: expected exactly 10 features (x1..x10), got 0"),
    ("string body", "hello", "the body is a JSON str"),
    ("number body", 3, "the body is a JSON int"),
    ("positional extra key", {"features": [1.0] * 10, "foo": 1}, "unknown field(s) ['foo']"),
    ("id on a batch", {"features": [[1.0] * 10] * 2, "id": "a"}, "id applies to a single vector"),
    ("bad id", {"features": [1.0] * 10, "id": [1]}, "id: must be a string or an integer"),
    (
        "bad id in batch",
        [{**{f"x{i}": 1.0 for i in range(1, 11)}, "id": 1.5}],
        "records[0].id: must be a string or an integer",
    ),
    ("too many records", [[1.0] * 10] * 51, "51 records exceed the batch limit of 50"),
]


@pytest.mark.parametrize(("case", "body", "reason"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
def test_invalid_bodies_are_422_with_a_reason(client: Client, case: str, body: object, reason: str):
    status, payload = post(client, body)
    assert status == 422
    assert payload["error"] == "invalid_request"
    assert reason in payload["detail"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "the body is not valid JSON"),
        (b"\xff\xfe\x00", "the body is not valid JSON"),
        (b"", "the body is empty"),
        (b"[" * 3000 + b"]" * 3000, "nested too deeply"),
        (b"[1" + b"0" * 5000 + b",1,1,1,1,1,1,1,1,1]", "the body is not valid JSON"),
        (
            b"[1" + b"0" * 400 + b",1,1,1,1,1,1,1,1,1]",
            "features[0]: Input should be a valid number",
        ),
        (b"   ", "the body is empty"),
        (
            json.dumps([float("nan")] + [1.0] * 9).encode(),
            "features[0]: Input should be a finite number",
        ),
        (
            b'{"features": [Infinity, 1,1,1,1,1,1,1,1,1]}',
            "features[0]: Input should be a finite number",
        ),
        (
            b'{"features": [1e400, 1,1,1,1,1,1,1,1,1]}',
            "features[0]: Input should be a finite number",
        ),
    ],
)
def test_malformed_payloads_are_422(client: Client, raw: bytes, reason: str):
    response = client.post("/predict", data=raw, content_type="application/json")
    assert response.status_code == 422
    assert reason in response.get_json()["detail"]


def test_body_over_the_limit_is_413_before_reading(client: Client):
    big = json.dumps([[1.0] * 10] * 40).encode() + b" " * 8192
    response = client.post("/predict", data=big, content_type="application/json")
    assert response.status_code == 413
    assert "larger than 8192 bytes" in response.get_json()["detail"]


def test_chunked_body_over_the_limit_is_413(client: Client):
    big = b"[" + b"1," * 5000 + b"1]"
    environ_overrides = {"CONTENT_LENGTH": ""}
    response = client.post(
        "/predict", data=big, content_type="application/json", environ_overrides=environ_overrides
    )
    assert response.status_code == 413


def test_errors_are_listed_per_location(client: Client):
    status, payload = post(client, [{"x1": "a"}])
    assert status == 422
    locs = [e["loc"] for e in payload["errors"]]
    assert locs[0] == "records[0].x1"
    assert locs[1:] == [f"records[0].x{i}" for i in range(2, 11)]


def test_a_bug_is_a_json_500_not_a_traceback(client: Client, monkeypatch):
    def boom(self: CentroidModel, features: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(CentroidModel, "label", boom)
    response = client.post("/predict", json=[1.0] * 10)
    assert response.status_code == 500
    assert response.get_json() == {
        "error": "internal_error",
        "detail": "unexpected server error",
        "errors": [],
    }
