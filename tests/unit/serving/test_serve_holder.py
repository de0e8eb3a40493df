"""The REST service's champion follower: start-up fallbacks, following the alias, refusing broken
models (``personas.champion.ChampionFollower`` as ``serving.app`` builds it, over a fake registry)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from serve_fakes import FakeRegistry, shifted

from personas.champion import ChampionFollower
from personas.model import CentroidModel


def test_no_champion_serves_the_vendor_model(make_holder, fake_registry: FakeRegistry):
    holder = make_holder().start(background=False)
    assert holder.loaded.source == "vendor"
    assert holder.loaded.model.version == 0
    assert holder.status.registry_reachable is True
    assert holder.status.last_error is None


def test_champion_is_loaded_and_cached(make_holder, fake_registry, vendor_model, serve_settings):
    fake_registry.versions[3] = shifted(vendor_model, 1.0)
    fake_registry.champion = 3
    holder = make_holder().start(background=False)
    assert (holder.loaded.source, holder.loaded.model.version) == ("registry", 3)
    assert np.allclose(holder.loaded.model.centroids, vendor_model.centroids + 1.0)
    cached = json.loads((serve_settings.cache_dir / "persona-model.json").read_text())
    assert cached["version"] == 3
    assert np.allclose(cached["centroids"], vendor_model.centroids + 1.0)


def test_registry_down_at_start_uses_the_disk_cache(make_holder, fake_registry, vendor_model):
    fake_registry.versions[5] = shifted(vendor_model, 2.0)
    fake_registry.champion = 5
    make_holder().start(background=False)  # writes the cache
    fake_registry.down = True
    holder = make_holder().start(background=False)
    assert (holder.loaded.source, holder.loaded.model.version) == ("cache", 5)
    assert holder.status.registry_reachable is False
    assert "connection refused" in (holder.status.last_error or "")


def test_registry_down_without_cache_uses_vendor(make_holder, fake_registry):
    fake_registry.down = True
    holder = make_holder().start(background=False)
    assert (holder.loaded.source, holder.loaded.model.version) == ("vendor", 0)


def test_cache_is_per_model_name(make_holder, fake_registry, vendor_model):
    fake_registry.versions[2] = shifted(vendor_model, 1.0)
    fake_registry.champion = 2
    make_holder("model-a").start(background=False)
    fake_registry.down = True
    holder = make_holder("model-b").start(background=False)
    assert holder.loaded.source == "vendor"


def test_corrupt_cache_is_ignored(make_holder, fake_registry, serve_settings):
    serve_settings.cache_dir.mkdir(parents=True)
    (serve_settings.cache_dir / "persona-model.json").write_text("{half a file")
    fake_registry.down = True
    holder = make_holder().start(background=False)
    assert holder.loaded.source == "vendor"


def test_refresh_follows_the_alias_forward_and_back(make_holder, fake_registry, vendor_model):
    fake_registry.versions[1] = shifted(vendor_model, 1.0)
    fake_registry.versions[2] = shifted(vendor_model, 2.0)
    holder = make_holder().start(background=False)
    assert holder.refresh() is False  # still no champion
    fake_registry.champion = 1
    assert holder.refresh() is True
    assert holder.loaded.model.version == 1
    assert holder.refresh() is False  # unchanged alias: no reload
    assert fake_registry.loads == [1]
    fake_registry.champion = 2
    assert holder.refresh() is True
    assert holder.loaded.model.version == 2
    fake_registry.champion = 1  # a rollback is followed too
    assert holder.refresh() is True
    assert holder.loaded.model.version == 1


def test_broken_champion_never_replaces_a_working_model(make_holder, fake_registry, vendor_model):
    fake_registry.versions[1] = shifted(vendor_model, 1.0)
    fake_registry.champion = 1
    holder = make_holder().start(background=False)
    fake_registry.champion = 2  # version 2 has no persona_model.json
    assert holder.refresh() is False
    assert holder.loaded.model.version == 1
    assert "version 2" in (holder.status.last_error or "")
    assert holder.status.registry_reachable is True
    assert holder.refresh() is False
    assert fake_registry.loads == [1, 2]  # a rejected version is not downloaded again


def test_outage_keeps_the_model_and_recovers(make_holder, fake_registry, vendor_model):
    fake_registry.versions[1] = shifted(vendor_model, 1.0)
    fake_registry.versions[2] = shifted(vendor_model, 2.0)
    fake_registry.champion = 1
    holder = make_holder().start(background=False)
    fake_registry.down = True
    fake_registry.champion = 2
    assert holder.refresh() is False
    assert holder.loaded.model.version == 1
    assert holder.status.registry_reachable is False
    fake_registry.down = False
    assert holder.refresh() is True
    assert holder.loaded.model.version == 2
    assert holder.status.registry_reachable is True


def test_cached_model_is_replaced_by_the_registry_copy(make_holder, fake_registry, vendor_model):
    fake_registry.versions[4] = shifted(vendor_model, 1.0)
    fake_registry.champion = 4
    make_holder().start(background=False)
    fake_registry.down = True
    holder = make_holder().start(background=False)
    assert holder.loaded.source == "cache"
    fake_registry.down = False
    assert holder.refresh() is True
    assert (holder.loaded.source, holder.loaded.model.version) == ("registry", 4)


def test_background_poller_swaps_and_wake_is_immediate(fake_registry, vendor_model, tmp_path):
    from personas.settings import Settings

    fake_registry.versions[1] = shifted(vendor_model, 1.0)
    holder = ChampionFollower(
        Settings(), cache_dir=tmp_path, poll_interval_s=3600, registry=fake_registry
    ).start()
    try:
        assert holder.loaded.model.version == 0
        fake_registry.champion = 1
        holder.wake()  # what a ModelUpdated message does
        deadline = time.monotonic() + 5
        while holder.loaded.model.version != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert holder.loaded.model.version == 1
    finally:
        holder.stop()


def test_update_filter_reads_only_our_model():
    from personas.champion import is_update_for
    from personas.settings import Settings

    ours, other = Settings(model_name="persona-model"), Settings(model_name="other-model")
    update = {
        "model_name": "persona-model",
        "version": 3,
        "alias": "champion",
        "updated_at": "2026-11-26T10:00:00Z",
    }
    assert is_update_for(json.dumps(update).encode(), ours) is True
    assert is_update_for(json.dumps(update).encode(), other) is False
    challenger = json.dumps(update | {"alias": "challenger"}).encode()
    assert is_update_for(challenger, ours) is False
    assert is_update_for(b"not json", ours) is False
    assert is_update_for(None, ours) is False


def test_invalid_model_from_registry_is_rejected(make_holder, fake_registry, vendor_model):
    from personas.errors import InvalidModel

    fake_registry.versions[1] = InvalidModel("centroids contain NaN or infinite values")
    fake_registry.champion = 1
    holder = make_holder().start(background=False)
    assert (holder.loaded.source, holder.loaded.model.version) == ("vendor", 0)
    assert "NaN" in (holder.status.last_error or "")
    assert isinstance(holder.loaded.model, CentroidModel)


def test_a_bug_is_not_reported_as_the_registry_being_unavailable(
    make_holder, fake_registry, vendor_model, serve_settings, monkeypatch
):
    """Only real outages make /health 'degraded'; a bug in our code is raised (the poller logs
    it with its traceback) instead of sending an operator to a healthy MLflow."""
    from werkzeug.test import Client

    from serving.app import create_app

    fake_registry.versions[1] = shifted(vendor_model, 1.0)
    fake_registry.champion = 1
    holder = make_holder().start(background=False)

    def bug(settings):
        raise AttributeError("'NoneType' object has no attribute 'version'")

    monkeypatch.setattr(fake_registry, "champion_version", bug)
    with pytest.raises(AttributeError):
        holder.refresh()
    health = Client(create_app(holder.settings, serve_settings, holder=holder)).get("/health")
    body = health.get_json()
    assert (body["status"], body["registry_reachable"]) == ("ok", True)
    assert body["model_version"] == 1
