"""Issue #13: a model the stream worker refuses is refused by the REST service too — both follow
the champion through ``personas.champion.ChampionFollower``, built by each service's own
``follow_champion``, so there is one acceptance rule (a fake registry stands in for MLflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from serve_fakes import FakeRegistry, shifted

from personas.champion import ChampionFollower
from personas.errors import InvalidModel
from personas.model import CentroidModel
from personas.settings import Settings
from serving.app import follow_champion as serve_follower
from serving.settings import ServeSettings
from stream_app.metrics import StreamMetrics
from stream_app.settings import StreamSettings
from stream_app.swap import follow_champion as stream_follower


def _with(model: CentroidModel, **changes: Any) -> CentroidModel:
    return CentroidModel.from_dict({**model.to_dict(), **changes})


def _both(
    tmp_path: Path, registry: FakeRegistry, *, allow_new_personas: bool = False
) -> dict[str, ChampionFollower]:
    settings = Settings(model_name="persona-model", allow_new_personas=allow_new_personas)
    serve = ServeSettings(cache_dir=tmp_path / "serve", follow_updates_topic=False)
    stream = StreamSettings(state_dir=tmp_path / "stream")
    return {
        "stream": stream_follower(settings, stream, StreamMetrics(), registry=registry).start(
            background=False
        ),
        "rest": serve_follower(settings, serve, registry=registry).start(background=False),
    }


def _bad_model(case: str, vendor: CentroidModel) -> CentroidModel | Exception:
    """Version 2 of each case: a model one of the three acceptance checks must refuse."""
    unknown = [*vendor.persona_ids[:-1], 42]
    if case == "unknown persona id":
        return _with(vendor, persona_ids=unknown)
    if case == "approval of another id":
        other = _with(vendor, persona_ids=unknown)
        other.metadata["approved_new_personas"] = [41]
        return other
    if case == "two centroids at one point":
        duplicated = vendor.centroids.copy()
        duplicated[1] = duplicated[0]
        return _with(vendor, centroids=duplicated.tolist())
    assert case == "NaN centroids (refused while loading)"
    return InvalidModel("centroids contain NaN")


CASES = [
    "unknown persona id",
    "approval of another id",
    "two centroids at one point",
    "NaN centroids (refused while loading)",
]


@pytest.mark.parametrize("case", CASES)
def test_a_model_the_stream_refuses_is_refused_by_rest_too(
    case: str, vendor_model: CentroidModel, tmp_path: Path
) -> None:
    registry = FakeRegistry()
    registry.versions[1] = shifted(vendor_model, 0.5)
    registry.versions[2] = _bad_model(case, vendor_model)
    registry.champion = 1
    followers = _both(tmp_path, registry)
    registry.champion = 2
    for name, follower in followers.items():
        assert follower.refresh("model-updates") is False, name
        assert follower.current.version == 1, name
        assert follower.refused_versions == {2}, name
        assert "version 2" in (follower.status.last_error or ""), name


def test_an_approved_new_persona_is_taken_by_both(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    approved = _with(vendor_model, persona_ids=[*vendor_model.persona_ids, 42][1:])
    approved.metadata["approved_new_personas"] = [42]
    registry = FakeRegistry()
    registry.versions[2] = approved
    followers = _both(tmp_path, registry)
    registry.champion = 2
    for name, follower in followers.items():
        assert follower.refresh("model-updates") is True, name
        assert follower.current.persona_ids == approved.persona_ids, name


def test_one_setting_lets_both_take_unapproved_personas(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    """PERSONA_ALLOW_NEW_PERSONAS is shared: the services can no longer be set apart."""
    registry = FakeRegistry()
    registry.versions[2] = _with(vendor_model, persona_ids=[*vendor_model.persona_ids[:-1], 42])
    followers = _both(tmp_path, registry, allow_new_personas=True)
    registry.champion = 2
    for name, follower in followers.items():
        assert follower.refresh("model-updates") is True, name
        assert 42 in follower.current.persona_ids, name
