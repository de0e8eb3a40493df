"""Hot swap on model-updates: every worker of a group swaps; a broken model is refused."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
from fault_tools import wait_for
from stream_helpers import (
    Worker,
    make_events,
    metric,
    pg_count,
    produce_events,
    publish_update,
    read_topic,
    register_version,
)

from personas.model import CentroidModel
from personas.settings import Settings


def _shifted(model: CentroidModel, by: float) -> CentroidModel:
    return CentroidModel.from_dict(
        {**model.to_dict(), "centroids": (model.centroids + by).tolist()}
    )


def _version_of(worker: Worker) -> int | None:
    state = worker.health()
    return None if state is None else int(state["model_version"])


def test_two_workers_of_one_group_both_swap_on_one_update(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    v1 = register_version(s, _shifted(vendor_model, 0.5).to_dict())
    a, b = workers(), workers()
    a.wait_ready()
    b.wait_ready()
    wait_for(
        lambda: (
            sorted((a.health() or {})["partitions"] + (b.health() or {})["partitions"])
            == [0, 1, 2, 3]
        ),
        60,
        "the two workers to share the four partitions",
    )
    assert a.health()["partitions"] and b.health()["partitions"]  # type: ignore[index]
    before = make_events(vendor_model, 400, seed=21)
    produce_events(s, before)
    wait_for(lambda: pg_count(s)[0] == 400, 60, "400 rows labelled by v1")

    v2 = register_version(s, _shifted(vendor_model, -0.5).to_dict())
    publish_update(s, v2, previous=v1)  # registry polling is off (300 s): the topic must do it
    wait_for(lambda: _version_of(a) == v2 and _version_of(b) == v2, 30, "both workers on version 2")
    after = make_events(vendor_model, 400, seed=22)
    produce_events(s, after)
    wait_for(lambda: pg_count(s)[0] == 800, 60, "400 more rows")

    labels = [json.loads(m.value()) for m in read_topic(s, s.topics.labels, expect=800)]
    version_by_event = {label["event_id"]: label["model_version"] for label in labels}
    assert {version_by_event[e["event_id"]] for e in before} == {v1}
    assert {version_by_event[e["event_id"]] for e in after} == {v2}
    for worker in (a, b):
        text = worker.metrics()
        assert metric(text, "persona_stream_model_version") == v2
        assert metric(text, "persona_stream_model_swaps_total", result="applied") == 1
        assert metric(text, "persona_stream_model_swaps_total", result="refused") == 0
        assert f"hot swap: model version {v1} -> {v2}" in worker.output()


def test_a_broken_model_never_replaces_the_working_one(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    v1 = register_version(s, vendor_model.to_dict())
    worker = workers()
    assert worker.wait_ready()["model_version"] == v1

    broken = vendor_model.to_dict()
    broken["centroids"] = np.where(
        np.eye(3, 10, dtype=bool), np.nan, np.asarray(broken["centroids"])
    ).tolist()
    v2 = register_version(s, broken)  # NaN centroids
    publish_update(s, v2, previous=v1)
    unknown = {**vendor_model.to_dict(), "persona_ids": [0, 1, 42]}
    v3 = register_version(s, unknown)  # a persona nobody knows
    publish_update(s, v3, previous=v2)
    wait_for(
        lambda: (worker.health() or {}).get("refused_versions") == [v2, v3],
        30,
        "both broken versions refused",
    )
    events = make_events(vendor_model, 300, seed=31)
    produce_events(s, events)
    wait_for(lambda: pg_count(s)[0] == 300, 60, "300 rows")
    labels = [json.loads(m.value()) for m in read_topic(s, s.topics.labels, expect=300)]
    assert {label["model_version"] for label in labels} == {v1}
    text = worker.metrics()
    assert metric(text, "persona_stream_model_version") == v1
    assert metric(text, "persona_stream_model_swaps_total", result="refused") == 2
    assert metric(text, "persona_stream_model_swaps_total", result="applied") == 0
    output = worker.output()
    assert f"refused model version {v2}" in output and "NaN" in output
    assert f"refused model version {v3}" in output and "unknown persona ids [42]" in output


def test_starts_from_the_disk_cache_when_mlflow_is_down(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    v1 = register_version(s, _shifted(vendor_model, 0.25).to_dict())
    first = workers()
    assert first.wait_ready()["model_version"] == v1
    first.stop()
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    again = workers(PERSONA_MLFLOW_TRACKING_URI=dead)
    state = again.wait_ready()
    assert state["model_version"] == v1 and "on-disk cache" in state["model_source"]
    fresh = workers(state="empty", PERSONA_MLFLOW_TRACKING_URI=dead)
    state = fresh.wait_ready()
    assert state["model_version"] == 0 and "vendor" in state["model_source"]
