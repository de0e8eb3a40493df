"""`persona serve` against the real stack: labels equal CentroidModel's, the alias is followed
without a restart (by polling, and at once when a ModelUpdated arrives on Kafka)."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from serve_process import Server

from personas import registry
from personas.catalogue import FEATURES
from personas.kafka import producer_config
from personas.model import CentroidModel
from personas.schemas import ModelUpdated, utc_now
from personas.settings import Settings


def moved(model: CentroidModel, by: float) -> CentroidModel:
    return CentroidModel.from_dict(model.to_dict() | {"centroids": (model.centroids + by).tolist()})


def wait_for_version(server: Server, version: int, timeout: float) -> float:
    """Seconds until 20 requests in a row (spread over the workers) answer with ``version``."""
    start = time.monotonic()
    streak = 0
    while time.monotonic() - start < timeout:
        status, body = server.post("/predict", [0.0] * 10)
        assert status == 200, body
        streak = streak + 1 if body["model_version"] == version else 0
        if streak >= 20:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"still not serving v{version} after {timeout} s:\n{server.output()}")


def test_serves_vendor_then_follows_the_alias_by_polling(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    start_server: Callable[..., Server],
    register_model: Callable[[CentroidModel], int],
    set_champion: Callable[[int], None],
):
    server = start_server(workers=2, poll_interval_s="1", follow_updates_topic="false")
    status, health = server.get("/health")
    assert (health["model_version"], health["model_source"]) == (0, "vendor")
    assert health["registry_reachable"] is True
    workers_before = server.worker_pids()
    assert len(workers_before) == 2

    version = register_model(moved(vendor_model, 1.5))
    set_champion(version)
    wait_for_version(server, version, timeout=30)

    rows = np.random.default_rng(11).normal(0.0, 6.0, size=(300, 10))
    status, body = server.post(
        "/predict", [dict(zip(FEATURES, r.tolist(), strict=True)) for r in rows]
    )
    assert status == 200
    expected_model = registry.load_version(isolated_settings, version)
    labels = expected_model.label(rows)
    assert body["model_version"] == version
    assert body["count"] == 300
    assert [p["persona_id"] for p in body["predictions"]] == labels.persona_id.tolist()
    assert [p["persona_name"] for p in body["predictions"]] == [
        expected_model.persona_names[i] for i in labels.index
    ]
    assert np.allclose([p["distance"] for p in body["predictions"]], labels.distance)
    assert np.allclose([p["margin"] for p in body["predictions"]], labels.margin)
    assert [p["is_outlier"] for p in body["predictions"]] == labels.is_outlier.tolist()
    # the shifted model really labels differently from the vendor one on this sample
    assert labels.persona_id.tolist() != vendor_model.label(rows).persona_id.tolist()

    status, model = server.get("/model")
    assert (model["version"], model["source"]) == (version, "registry")
    assert np.allclose(model["centroids"], vendor_model.centroids + 1.5)
    assert server.process.poll() is None
    assert server.worker_pids() == workers_before  # swapped in place: no worker was restarted
    answering = {server.get("/health")[1]["pid"] for _ in range(20)}
    assert answering <= workers_before


def test_model_updated_message_swaps_at_once(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    start_server: Callable[..., Server],
    register_model: Callable[[CentroidModel], int],
    set_champion: Callable[[int], None],
):
    from confluent_kafka import Producer

    first = register_model(moved(vendor_model, 1.0))
    set_champion(first)
    # polling every 10 minutes: only the model-updates message can explain a quick swap
    server = start_server(workers=2, poll_interval_s="600", follow_updates_topic="true")
    assert server.get("/health")[1]["model_version"] == first
    time.sleep(3)  # let each worker's listener assign itself the topic's end

    second = register_model(moved(vendor_model, 2.0))
    set_champion(second)
    update = ModelUpdated(
        model_name=isolated_settings.model_name,
        version=second,
        alias=isolated_settings.champion_alias,
        previous_version=first,
        updated_at=utc_now(),
    )
    producer = Producer(producer_config(isolated_settings))
    producer.produce(
        isolated_settings.topics.model_updates,
        key=isolated_settings.model_name.encode(),
        value=update.model_dump_json().encode(),
    )
    assert producer.flush(10) == 0
    took = wait_for_version(server, second, timeout=30)
    assert took < 30
    _status, model = server.get("/model")
    assert model["version"] == second
    assert np.allclose(model["centroids"], vendor_model.centroids + 2.0)


def test_a_broken_champion_never_replaces_the_working_model(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    start_server: Callable[..., Server],
    register_model: Callable[[CentroidModel], int],
    set_champion: Callable[[int], None],
):
    good = register_model(moved(vendor_model, 1.0))
    set_champion(good)
    server = start_server(workers=1, poll_interval_s="0.5", follow_updates_topic="false")
    assert server.get("/health")[1]["model_version"] == good

    # a version whose run logged no persona_model.json: the registry accepts it, we must not
    client = registry.client(isolated_settings)
    run = client.create_run(
        client.get_experiment_by_name(f"serve-test-{isolated_settings.model_name}").experiment_id
    )
    client.set_terminated(run.info.run_id)
    broken = int(
        client.create_model_version(
            isolated_settings.model_name, f"runs:/{run.info.run_id}", run.info.run_id
        ).version
    )
    set_champion(broken)
    deadline = time.monotonic() + 20
    health = server.get("/health")[1]
    while time.monotonic() < deadline and not health["last_error"]:
        time.sleep(0.2)
        health = server.get("/health")[1]
    assert f"version {broken}" in health["last_error"]
    assert (health["model_version"], health["model_source"]) == (good, "registry")
    assert health["registry_reachable"] is True
    status, body = server.post("/predict", [0.0] * 10)
    assert (status, body["model_version"]) == (200, good)

    set_champion(good)  # the operator rolls the alias back: nothing to reload, still good
    third = register_model(moved(vendor_model, 2.0))
    set_champion(third)
    wait_for_version(server, third, timeout=20)
