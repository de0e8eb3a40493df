"""Unit fixtures for the prediction service: a fake registry (no MLflow) and a test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_fakes import FakeRegistry
from werkzeug.test import Client

from personas.champion import ChampionFollower
from personas.settings import Settings
from serving.app import PredictionApp, create_app, follow_champion
from serving.settings import ServeSettings


@pytest.fixture
def fake_registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def serve_settings(tmp_path: Path) -> ServeSettings:
    return ServeSettings(cache_dir=tmp_path / "cache", max_batch=50, max_body_bytes=8192)


@pytest.fixture
def make_holder(fake_registry: FakeRegistry, serve_settings: ServeSettings):
    holders: list[ChampionFollower] = []

    def make(model_name: str = "persona-model") -> ChampionFollower:
        serve = serve_settings.model_copy(
            update={"poll_interval_s": 3600, "follow_updates_topic": False}
        )
        holder = follow_champion(Settings(model_name=model_name), serve, registry=fake_registry)
        holders.append(holder)
        return holder

    yield make
    for holder in holders:
        holder.stop()


@pytest.fixture
def app(make_holder, serve_settings: ServeSettings) -> PredictionApp:
    holder = make_holder().start(background=False)
    return create_app(holder.settings, serve_settings, holder=holder)


@pytest.fixture
def client(app: PredictionApp) -> Iterator[Client]:
    yield Client(app)
