"""GET routes, unknown routes and methods, OpenAPI document, hot swap seen through the API."""

from __future__ import annotations

import json

import numpy as np
from serve_fakes import FakeRegistry, shifted
from werkzeug.test import Client

from personas.catalogue import FEATURES, Catalogue
from serving.app import create_app
from serving.openapi import build_openapi
from serving.schemas import PredictResponse
from serving.settings import ServeSettings


def test_health_reports_the_model_and_registry(client: Client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["model_loaded"] is True
    assert (body["model_version"], body["model_source"]) == (0, "vendor")
    assert body["registry_reachable"] is True
    assert body["last_error"] is None


def test_health_is_degraded_when_the_registry_is_down(make_holder, fake_registry, serve_settings):
    fake_registry.down = True
    holder = make_holder().start(background=False)
    body = Client(create_app(holder.settings, serve_settings, holder=holder)).get("/health")
    assert body.status_code == 200
    assert body.get_json()["status"] == "degraded"
    assert body.get_json()["registry_reachable"] is False


def test_model_describes_the_served_model(client: Client, catalogue: Catalogue):
    response = client.get("/model")
    assert response.status_code == 200
    assert response.headers["X-Model-Version"] == "0"
    body = response.get_json()
    assert body["model_name"] == "persona-model"
    assert body["alias"] == "champion"
    assert body["version"] == 0
    assert body["source"] == "vendor"
    assert body["feature_names"] == list(FEATURES)
    assert body["persona_ids"] == list(catalogue.ids)
    assert body["persona_names"] == list(catalogue.names)
    assert np.allclose(body["centroids"], catalogue.centroids)
    assert body["outlier_distance"] > 0
    assert body["loaded_at"].endswith("+00:00")


def test_unknown_route_and_method(client: Client):
    missing = client.get("/nope")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "not_found"
    wrong = client.get("/predict")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "POST"
    assert client.post("/health").status_code == 405
    assert client.post("/predict/", json=[1.0] * 10).status_code == 200  # trailing slash


def test_openapi_is_3_1_and_describes_every_route(client: Client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/",
        "/predict",
        "/health",
        "/model",
        "/metrics",
        "/openapi.json",
    }
    assert set(document["paths"]) == set(client.get("/").get_json()["routes"])
    predict = document["paths"]["/predict"]["post"]
    assert set(predict["responses"]) == {"200", "400", "413", "422", "500"}
    schemas = document["components"]["schemas"]
    assert {
        "NamedRecord",
        "PositionalRecord",
        "PositionalBatch",
        "Prediction",
        "PredictResponse",
    } <= set(schemas)
    assert schemas["NamedRecord"]["properties"]["x1"]["maximum"] == 1000.0
    assert set(FEATURES) <= set(schemas["NamedRecord"]["required"])
    refs = {json.dumps(v) for v in document["paths"].values()}
    assert all("#/components/schemas/" in r for r in refs if "$ref" in r)


def test_openapi_limits_follow_the_settings():
    document = build_openapi(ServeSettings(max_batch=7))
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert "1 to 7 records" in body["schema"]["description"]


def test_response_matches_its_published_model(client: Client):
    response = client.post("/predict", json=[[0.5] * 10, [3.0] * 10])
    parsed = PredictResponse.model_validate(response.get_json())
    assert parsed.count == 2


def test_hot_swap_is_seen_by_the_next_request(
    make_holder, fake_registry: FakeRegistry, serve_settings, vendor_model, catalogue
):
    holder = make_holder().start(background=False)
    client = Client(create_app(holder.settings, serve_settings, holder=holder))
    point = catalogue.centroids[0] + 3.0  # at a shifted model's centroid 0
    before = client.post("/predict", json=point.tolist()).get_json()["predictions"][0]
    fake_registry.versions[7] = shifted(vendor_model, 3.0)
    fake_registry.champion = 7
    assert holder.refresh() is True
    after = client.post("/predict", json=point.tolist()).get_json()
    assert before["model_version"] == 0
    assert after["model_version"] == 7
    assert after["predictions"][0]["model_version"] == 7
    assert after["predictions"][0]["persona_id"] == catalogue.ids[0]
    assert after["predictions"][0]["distance"] < 1e-6 < before["distance"]
    assert client.get("/health").get_json()["model_version"] == 7


def test_metrics_count_requests_by_route_and_status_and_show_the_model(client: Client) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client.post("/predict", json=[[0.5] * 10, [3.0] * 10])
    client.post("/predict", data=b"{nope", content_type="application/json")
    client.get("/no/such/path")
    client.get("/another/one")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }
    requests = "persona_serve_requests_total"
    assert samples[(requests, (("route", "/predict"), ("status", "200")))] == 1
    assert samples[(requests, (("route", "/predict"), ("status", "422")))] == 1
    # unknown paths share one series: a scanner cannot create a series per path it tries
    assert samples[(requests, (("route", "other"), ("status", "404")))] == 2
    assert samples[("persona_serve_predicted_records_total", ())] == 2
    assert samples[("persona_serve_request_seconds_count", (("route", "/predict"),))] == 2
    assert ("persona_serve_model_version", ()) in samples
