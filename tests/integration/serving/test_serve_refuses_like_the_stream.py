"""Issue #13 against the real MLflow: versions the stream worker refuses (a persona nobody knows,
two centroids at one point — both well-formed documents MLflow stores happily) are refused by a
running `persona serve` too, which keeps serving the working model. The stream's side is its
own follower (``stream_app.swap.follow_champion``, what every worker builds) over the same
registry; the worker process itself refusing these is tests/integration/stream_app/
test_stream_swap.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serve_process import Server

from personas.model import CentroidModel
from personas.settings import Settings
from stream_app.metrics import StreamMetrics
from stream_app.settings import StreamSettings
from stream_app.swap import follow_champion


def _document(model: CentroidModel, **changes: Any) -> CentroidModel:
    return CentroidModel.from_dict({**model.to_dict(), **changes})


def _wait_refused(server: Server, version: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        health = server.get("/health")[1]
        if f"version {version}" in (health["last_error"] or ""):
            return dict(health)
        if time.monotonic() > deadline:
            raise AssertionError(f"v{version} not refused in {timeout} s:\n{server.output()}")
        time.sleep(0.2)


def test_rest_refuses_the_models_the_stream_refuses(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    start_server: Callable[..., Server],
    register_model: Callable[[CentroidModel], int],
    set_champion: Callable[[int], None],
    tmp_path: Path,
) -> None:
    good = register_model(_document(vendor_model, centroids=(vendor_model.centroids + 1).tolist()))
    set_champion(good)
    server = start_server(workers=1, poll_interval_s="0.5", follow_updates_topic="false")
    stream = follow_champion(
        isolated_settings, StreamSettings(state_dir=tmp_path / "stream"), StreamMetrics()
    )
    assert stream.load().model.version == good
    assert server.get("/health")[1]["model_version"] == good

    duplicated = vendor_model.centroids.copy()
    duplicated[1] = duplicated[0]
    bad = {
        "unknown persona ids [42]": _document(vendor_model, persona_ids=[0, 1, 42]),
        "not labelled as their own persona": _document(vendor_model, centroids=duplicated.tolist()),
    }
    for reason, model in bad.items():
        version = register_model(model)
        set_champion(version)
        assert stream.refresh("registry poll") is False
        assert stream.current.version == good and version in stream.refused_versions
        assert reason in (stream.status.last_error or "")

        health = _wait_refused(server, version)
        assert reason in health["last_error"]
        assert (health["model_version"], health["model_source"]) == (good, "registry")
        assert health["status"] == "ok" and health["registry_reachable"] is True
        status, body = server.post("/predict", [0.0] * 10)
        assert (status, body["model_version"]) == (200, good)
    assert f"refused model version {version}" in server.output()
