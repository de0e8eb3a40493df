"""Model holder, start-up fallbacks and the watcher's decisions (stubs instead of MLflow/Kafka)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personas.errors import InvalidModel, ServiceUnavailable
from personas.model import CentroidModel
from personas.schemas import ModelUpdated, utc_now
from personas.settings import Settings
from stream_app.metrics import StreamMetrics
from stream_app.swap import ModelCache, ModelHolder, ModelWatcher, initial_model


def _version(model: CentroidModel, version: int, **changes: object) -> CentroidModel:
    return CentroidModel.from_dict({**model.to_dict(), "version": version, **changes})


def _value(metrics: StreamMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_offer_swaps_a_valid_model(vendor_model: CentroidModel, tmp_path: Path) -> None:
    metrics = StreamMetrics()
    cache = ModelCache(tmp_path, "m")
    holder = ModelHolder(vendor_model, metrics=metrics, cache=cache)
    candidate = _version(vendor_model, 3, centroids=(vendor_model.centroids + 0.5).tolist())
    assert holder.offer(candidate, "test") is True
    assert holder.current is candidate
    assert _value(metrics, "persona_stream_model_version") == 3
    assert _value(metrics, "persona_stream_model_swaps_total", result="applied") == 1
    cached = cache.load()
    assert cached is not None and cached.version == 3
    np.testing.assert_allclose(cached.centroids, candidate.centroids)


def test_unknown_persona_ids_are_refused(vendor_model: CentroidModel) -> None:
    metrics = StreamMetrics()
    holder = ModelHolder(vendor_model, metrics=metrics)
    ids = [*vendor_model.persona_ids[:-1], 99]
    assert holder.offer(_version(vendor_model, 2, persona_ids=ids), "test") is False
    assert holder.current is vendor_model
    assert holder.refused_versions == {2}
    assert _value(metrics, "persona_stream_model_swaps_total", result="refused") == 1
    assert _value(metrics, "persona_stream_model_version") == 0


def test_new_personas_can_be_allowed(vendor_model: CentroidModel) -> None:
    holder = ModelHolder(vendor_model, allow_new_personas=True)
    ids = [*vendor_model.persona_ids[:-1], 99]
    assert holder.offer(_version(vendor_model, 2, persona_ids=ids), "test") is True


def test_persona_ids_a_person_approved_are_accepted(vendor_model: CentroidModel) -> None:
    """`persona train accept` writes the new ids into the model; only those get through."""
    ids = [*vendor_model.persona_ids[:-1], 99]
    approved = _version(vendor_model, 2, persona_ids=ids)
    approved.metadata["approved_new_personas"] = [99]
    other = _version(vendor_model, 3, persona_ids=ids)
    other.metadata["approved_new_personas"] = [98]
    holder = ModelHolder(vendor_model)
    assert holder.offer(other, "test") is False
    assert holder.offer(approved, "test") is True and holder.current.version == 2


def test_identical_centroids_are_refused(vendor_model: CentroidModel) -> None:
    holder = ModelHolder(vendor_model)
    c = vendor_model.centroids.copy()
    c[1] = c[0]
    assert holder.offer(_version(vendor_model, 4, centroids=c.tolist()), "test") is False
    assert holder.current is vendor_model


def test_malformed_documents_never_become_models(vendor_model: CentroidModel) -> None:
    doc = vendor_model.to_dict()
    for broken in (
        {**doc, "centroids": [[float("nan")] * 10] * 3},
        {**doc, "centroids": [[1.0] * 9] * 3},
        {**doc, "format": "other"},
        {k: v for k, v in doc.items() if k != "persona_ids"},
    ):
        with pytest.raises(InvalidModel):
            CentroidModel.from_dict(broken)


def test_initial_model_prefers_the_registry(vendor_model: CentroidModel, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path, "m")
    v5 = _version(vendor_model, 5)
    model, source = initial_model(Settings(), cache, load_champion=lambda: v5)
    assert model is v5 and source.startswith("registry")
    assert json.loads(cache.path.read_text())["version"] == 5  # cached for the next start


def test_initial_model_falls_back_to_cache_then_vendor(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    cache = ModelCache(tmp_path, "m")

    def down() -> None:
        raise ServiceUnavailable("MLflow", "http://x", "refused")

    model, source = initial_model(Settings(), cache, load_champion=down)
    assert model.version == 0 and "vendor" in source
    cache.save(_version(vendor_model, 6))
    model, source = initial_model(Settings(), cache, load_champion=down)
    assert model.version == 6 and "cache" in source
    model, source = initial_model(Settings(), cache, load_champion=lambda: None)
    assert model.version == 0 and "no 'champion'" in source


def test_unreadable_cache_is_ignored(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path, "m")
    cache.path.write_text("{not json")
    assert cache.load() is None


class _Registry:
    def __init__(self, models: dict[int, CentroidModel | Exception], champion: int | None) -> None:
        self.models = models
        self.champion = champion
        self.loads: list[int] = []

    def load(self, version: int) -> CentroidModel:
        self.loads.append(version)
        found = self.models[version]
        if isinstance(found, Exception):
            raise found
        return found


def _watcher(holder: ModelHolder, registry: _Registry) -> ModelWatcher:
    return ModelWatcher(
        Settings(model_name="m"),
        holder,
        poll_seconds=30,
        load_version=registry.load,
        champion=lambda: registry.champion,
    )


def _update(version: int, *, name: str = "m", alias: str = "champion") -> bytes:
    return (
        ModelUpdated(model_name=name, version=version, alias=alias, updated_at=utc_now())
        .model_dump_json()
        .encode()
    )


def test_watcher_swaps_on_update_and_ignores_other_models(vendor_model: CentroidModel) -> None:
    holder = ModelHolder(vendor_model)
    registry = _Registry({2: _version(vendor_model, 2)}, champion=2)
    watcher = _watcher(holder, registry)
    watcher.on_update(_update(2, name="other"))
    watcher.on_update(_update(2, alias="challenger"))
    watcher.on_update(b"garbage")
    assert holder.current.version == 0 and registry.loads == []
    watcher.on_update(_update(2))
    assert holder.current.version == 2 and registry.loads == [2]
    watcher.on_update(_update(2))  # already current: no reload
    assert registry.loads == [2]


def test_watcher_refuses_invalid_once_and_keeps_working_model(
    vendor_model: CentroidModel,
) -> None:
    holder = ModelHolder(_version(vendor_model, 1))
    registry = _Registry({2: InvalidModel("centroids contain NaN")}, champion=2)
    watcher = _watcher(holder, registry)
    watcher.on_update(_update(2))
    watcher.check_registry()  # the registry still points at 2: not retried
    assert holder.current.version == 1
    assert holder.refused_versions == {2}
    assert registry.loads == [2]


def test_watcher_retries_when_registry_is_down(vendor_model: CentroidModel) -> None:
    holder = ModelHolder(vendor_model)
    registry = _Registry({3: ServiceUnavailable("MLflow", "http://x")}, champion=3)
    watcher = _watcher(holder, registry)
    watcher.on_update(_update(3))
    assert holder.current.version == 0 and watcher._pending == 3
    registry.models[3] = _version(vendor_model, 3)
    watcher.check_registry()
    assert holder.current.version == 3 and watcher._pending is None


def test_registry_poll_follows_rollback(vendor_model: CentroidModel) -> None:
    holder = ModelHolder(_version(vendor_model, 4))
    registry = _Registry({3: _version(vendor_model, 3)}, champion=3)
    _watcher(holder, registry).check_registry()
    assert holder.current.version == 3


def test_watcher_stopped_while_waiting_for_the_topic_exits_cleanly(
    vendor_model: CentroidModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop before the topic ever answered used to reach the 'following … from offset' line
    with the offset never assigned (UnboundLocalError on the watcher thread)."""
    import confluent_kafka

    closed: list[bool] = []
    watcher = _watcher(ModelHolder(vendor_model), _Registry({}, champion=None))

    class TopicNeverAnswers:
        def __init__(self, config: dict[str, object]) -> None:
            pass

        def get_watermark_offsets(self, *args: object, **kwargs: object) -> tuple[int, int]:
            watcher.stop()  # the worker stops while the watcher waits for the topic
            raise confluent_kafka.KafkaException(
                confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT)
            )

        def close(self) -> None:
            closed.append(True)

    monkeypatch.setattr(confluent_kafka, "Consumer", TopicNeverAnswers)
    watcher.run()  # on this thread, so an exception fails the test
    assert not watcher.assigned.is_set()
    assert closed == [True]
