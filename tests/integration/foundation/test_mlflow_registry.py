"""The stack's MLflow server logs runs, registers a model and serves it back by alias."""

from __future__ import annotations

import json

import numpy as np

from personas import registry
from personas.model import CentroidModel
from personas.settings import Settings


def test_log_register_and_load_by_alias(isolated_settings: Settings, vendor_model: CentroidModel):

    settings = isolated_settings
    client = registry.client(settings)
    assert registry.champion_version(settings) is None

    experiment = client.create_experiment(f"test-{settings.model_name}")
    run = client.create_run(experiment)
    shifted = CentroidModel.from_dict(
        vendor_model.to_dict() | {"centroids": (vendor_model.centroids + 1).tolist()}
    )
    client.log_text(run.info.run_id, json.dumps(shifted.to_dict()), registry.MODEL_ARTIFACT)
    client.log_metric(run.info.run_id, "silhouette", 0.5)
    client.set_terminated(run.info.run_id)
    client.create_registered_model(settings.model_name)
    mv = client.create_model_version(
        settings.model_name, f"runs:/{run.info.run_id}", run.info.run_id
    )
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, mv.version)

    assert registry.champion_version(settings) == int(mv.version)
    loaded = registry.load_champion(settings)
    assert loaded is not None and loaded.version == int(mv.version)
    assert np.allclose(loaded.centroids, vendor_model.centroids + 1)
    assert client.get_run(run.info.run_id).data.metrics["silhouette"] == 0.5
