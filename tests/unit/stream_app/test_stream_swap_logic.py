"""The stream worker's champion follower (``stream_app.swap.follow_champion``): metrics, the
state-dir cache, start-up fallbacks and the follower's decisions (a fake registry, no MLflow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personas.champion import ChampionFollower
from personas.errors import InvalidModel, ServiceUnavailable
from personas.model import CentroidModel
from personas.settings import Settings
from stream_app.metrics import StreamMetrics
from stream_app.settings import StreamSettings
from stream_app.swap import follow_champion


def _version(model: CentroidModel, version: int, **changes: object) -> CentroidModel:
    return CentroidModel.from_dict({**model.to_dict(), "version": version, **changes})


def _value(metrics: StreamMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class _Registry:
    """Versions in memory; a stored exception is what loading that version raises."""

    def __init__(
        self, models: dict[int, CentroidModel | Exception], champion: int | None = None
    ) -> None:
        self.models = models
        self.champion = champion
        self.down = False
        self.loads: list[int] = []

    def champion_version(self, settings: Settings) -> int | None:
        if self.down:
            raise ServiceUnavailable("MLflow", "http://x", "refused")
        return self.champion

    def load_version(self, settings: Settings, version: int) -> CentroidModel:
        self.loads.append(version)
        found = self.models[version]
        if isinstance(found, Exception):
            raise found
        return found


def _follower(
    tmp_path: Path,
    registry: _Registry,
    metrics: StreamMetrics | None = None,
    *,
    allow_new_personas: bool = False,
) -> ChampionFollower:
    follower = follow_champion(
        Settings(model_name="m", allow_new_personas=allow_new_personas),
        StreamSettings(state_dir=tmp_path),
        metrics or StreamMetrics(),
        registry=registry,
    )
    follower.load()
    return follower


def test_a_valid_champion_is_swapped_counted_and_cached(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    metrics = StreamMetrics()
    candidate = _version(vendor_model, 3, centroids=(vendor_model.centroids + 0.5).tolist())
    registry = _Registry({3: candidate})
    holder = _follower(tmp_path, registry, metrics)
    assert _value(metrics, "persona_stream_model_version") == 0
    registry.champion = 3
    assert holder.refresh() is True
    assert holder.current is candidate
    assert _value(metrics, "persona_stream_model_version") == 3
    assert _value(metrics, "persona_stream_model_swaps_total", result="applied") == 1
    cached = holder.cache.load()
    assert holder.cache.path == tmp_path / "models" / "m.json"
    assert cached is not None and cached.version == 3
    np.testing.assert_allclose(cached.centroids, candidate.centroids)


def test_unknown_persona_ids_are_refused(vendor_model: CentroidModel, tmp_path: Path) -> None:
    metrics = StreamMetrics()
    ids = [*vendor_model.persona_ids[:-1], 99]
    holder = _follower(
        tmp_path, _Registry({2: _version(vendor_model, 2, persona_ids=ids)}), metrics
    )
    assert holder.offer(_version(vendor_model, 2, persona_ids=ids), "test") is False
    assert holder.current.version == 0
    assert holder.refused_versions == {2}
    assert _value(metrics, "persona_stream_model_swaps_total", result="refused") == 1
    assert _value(metrics, "persona_stream_model_version") == 0


def test_new_personas_can_be_allowed(vendor_model: CentroidModel, tmp_path: Path) -> None:
    holder = _follower(tmp_path, _Registry({}), allow_new_personas=True)
    ids = [*vendor_model.persona_ids[:-1], 99]
    assert holder.offer(_version(vendor_model, 2, persona_ids=ids), "test") is True


def test_persona_ids_a_person_approved_are_accepted(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    """`persona train accept` writes the new ids into the model; only those get through."""
    ids = [*vendor_model.persona_ids[:-1], 99]
    approved = _version(vendor_model, 2, persona_ids=ids)
    approved.metadata["approved_new_personas"] = [99]
    other = _version(vendor_model, 3, persona_ids=ids)
    other.metadata["approved_new_personas"] = [98]
    holder = _follower(tmp_path, _Registry({}))
    assert holder.offer(other, "test") is False
    assert holder.offer(approved, "test") is True and holder.current.version == 2


def test_identical_centroids_are_refused(vendor_model: CentroidModel, tmp_path: Path) -> None:
    holder = _follower(tmp_path, _Registry({}))
    c = vendor_model.centroids.copy()
    c[1] = c[0]
    assert holder.offer(_version(vendor_model, 4, centroids=c.tolist()), "test") is False
    assert holder.current.version == 0


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


def test_start_prefers_the_registry(vendor_model: CentroidModel, tmp_path: Path) -> None:
    v5 = _version(vendor_model, 5)
    holder = _follower(tmp_path, _Registry({5: v5}, champion=5))
    assert holder.current is v5 and holder.loaded.description.startswith("registry")
    cache = tmp_path / "models" / "m.json"
    assert json.loads(cache.read_text())["version"] == 5  # cached for the next start


def test_start_falls_back_to_cache_then_vendor(vendor_model: CentroidModel, tmp_path: Path) -> None:
    down = _Registry({})
    down.down = True
    holder = _follower(tmp_path, down)
    assert holder.current.version == 0 and "vendor" in holder.loaded.description
    holder.cache.save(_version(vendor_model, 6))
    holder = _follower(tmp_path, down)
    assert holder.current.version == 6 and "on-disk cache" in holder.loaded.description
    holder = _follower(tmp_path, _Registry({}, champion=None))
    assert holder.current.version == 0 and "no 'champion'" in holder.loaded.description


def test_unreadable_cache_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.json").write_text("{not json")
    down = _Registry({})
    down.down = True
    assert _follower(tmp_path, down).loaded.source == "vendor"


def test_refresh_swaps_and_a_current_version_is_not_reloaded(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    registry = _Registry({2: _version(vendor_model, 2)})
    holder = _follower(tmp_path, registry)
    assert holder.refresh("model-updates") is False and registry.loads == []  # no champion yet
    registry.champion = 2
    assert holder.refresh("model-updates") is True
    assert holder.current.version == 2 and registry.loads == [2]
    assert holder.refresh("model-updates") is False  # already current: no reload
    assert registry.loads == [2]


def test_an_invalid_champion_is_refused_once_and_the_working_model_kept(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    metrics = StreamMetrics()
    registry = _Registry({1: _version(vendor_model, 1), 2: InvalidModel("centroids contain NaN")})
    registry.champion = 1
    holder = _follower(tmp_path, registry, metrics)
    registry.champion = 2
    assert holder.refresh("model-updates") is False
    assert holder.refresh() is False  # the registry still points at 2: not retried
    assert holder.current.version == 1
    assert holder.refused_versions == {2}
    assert registry.loads == [1, 2]
    assert _value(metrics, "persona_stream_model_swaps_total", result="refused") == 1


def test_a_registry_down_while_loading_is_retried(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    registry = _Registry({3: ServiceUnavailable("MLflow", "http://x")}, champion=None)
    holder = _follower(tmp_path, registry)
    registry.champion = 3
    assert holder.refresh("model-updates") is False
    assert holder.current.version == 0 and holder.retry_due
    assert holder.refused_versions == set()
    registry.models[3] = _version(vendor_model, 3)
    assert holder.refresh("retry") is True
    assert holder.current.version == 3 and not holder.retry_due


def test_registry_poll_follows_rollback(vendor_model: CentroidModel, tmp_path: Path) -> None:
    registry = _Registry({3: _version(vendor_model, 3), 4: _version(vendor_model, 4)}, champion=4)
    holder = _follower(tmp_path, registry)
    registry.champion = 3
    assert holder.refresh() is True
    assert holder.current.version == 3


def test_the_watcher_is_the_followers_and_not_ready_before_positioned(tmp_path: Path) -> None:
    """Readiness of a worker waits for the model-updates listener (never started here)."""
    holder = _follower(tmp_path, _Registry({}))
    assert holder.watcher.listener is not None
    assert holder.watcher.listener.group_prefix.startswith("persona-stream")
    assert not holder.watcher.assigned.is_set()
