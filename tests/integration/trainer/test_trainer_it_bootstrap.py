"""Bootstrap against the real registry: idempotent, self-describing, loadable by anyone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import read_all
from typer.testing import CliRunner

from persona_cli import build_app
from personas import registry
from personas.catalogue import FEATURES, Catalogue
from personas.model import DEFAULT_OUTLIER_DISTANCE
from personas.settings import Settings
from trainer.bootstrap import bootstrap
from trainer.settings import TrainerSettings


def test_bootstrap_is_idempotent_and_self_describing(
    isolated_settings: Settings, trainer_settings: TrainerSettings, catalogue: Catalogue
) -> None:
    import mlflow

    s = isolated_settings
    first = bootstrap(s, trainer_settings=trainer_settings)
    second = bootstrap(s, trainer_settings=trainer_settings)

    assert (first.version, first.created) == (1, True)
    assert (second.version, second.created, second.update) == (1, False, None)
    mlflow_client = registry.client(s)
    versions = mlflow_client.search_model_versions(f"name = '{s.model_name}'")
    assert [v.version for v in versions] == ["1"]
    assert registry.champion_version(s) == 1

    model = registry.load_champion(s)
    assert model is not None
    np.testing.assert_array_equal(model.centroids, catalogue.centroids)
    assert model.persona_ids == catalogue.ids
    assert model.persona_names == catalogue.names
    assert model.outlier_distance == pytest.approx(DEFAULT_OUTLIER_DISTANCE, rel=0.1)
    assert model.metadata["source"] == "vendor"

    tags = versions[0].tags
    assert tags["persona_source"] == "bootstrap"
    assert json.loads(tags["persona_ids"]) == [0, 1, 2]
    assert json.loads(tags["persona_names"]) == list(catalogue.names)

    document = json.loads(
        Path(
            mlflow_client.download_artifacts(versions[0].run_id, registry.MODEL_ARTIFACT)
        ).read_text()
    )
    assert document["version"] == 1

    reference = registry.load_reference(s, 1)
    assert len(reference) == 900
    assert list(reference.columns[:12]) == [*FEATURES, "persona_id", "distance"]
    assert (reference["persona_id"] == reference["true_persona_id"]).mean() > 0.99

    mlflow.set_tracking_uri(s.tracking_uri)
    mlflow.set_registry_uri(s.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{s.model_name}@{s.champion_alias}")
    assert pyfunc.metadata.get_input_schema().input_names() == list(FEATURES)
    probe = pd.DataFrame(catalogue.centroids[[2, 0, 1]] + 0.5, columns=list(FEATURES))
    assert np.asarray(pyfunc.predict(probe)).tolist() == [2, 0, 1]

    updates = read_all(s, s.topics.model_updates)
    assert len(updates) == 1
    key, value = updates[0]
    assert key == s.model_name
    assert (value["version"], value["alias"], value["previous_version"]) == (1, "champion", None)
    assert value["run_id"] == versions[0].run_id


def test_cli_bootstrap_with_reference_file(
    isolated_settings: Settings, catalogue: Catalogue, tmp_path: Path
) -> None:
    s = isolated_settings
    rng = np.random.default_rng(11)
    x = np.vstack([c + rng.normal(0, 2.0, size=(150, 10)) for c in catalogue.centroids])
    month = pd.DataFrame(x, columns=list(FEATURES))
    month.insert(0, "date", "2025-01-15")
    path = tmp_path / "2025-01.csv"
    month.to_csv(path, index=False)
    env = {
        "PERSONA_MODEL_NAME": s.model_name,
        "PERSONA_PG_SCHEMA": s.pg_schema,
        "PERSONA_TOPIC_MODEL_UPDATES": s.topics.model_updates,
    }
    runner = CliRunner()
    result = runner.invoke(build_app(), ["train", "bootstrap", "--reference", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert f"{s.model_name} version 1 registered" in result.output
    again = runner.invoke(build_app(), ["train", "bootstrap", "--reference", str(path)], env=env)
    assert again.exit_code == 0, again.output
    assert f"{s.model_name} version 1 already registered" in again.output

    reference = registry.load_reference(s, 1)
    np.testing.assert_allclose(reference[list(FEATURES)].to_numpy(), x)
    assert len(read_all(s, s.topics.model_updates)) == 1


def test_bootstrap_finishes_an_interrupted_first_run(
    isolated_settings: Settings, trainer_settings: TrainerSettings
) -> None:
    s = isolated_settings
    bootstrap(s, trainer_settings=trainer_settings)
    # As if the first run died after registering, before moving the alias.
    registry.client(s).delete_registered_model_alias(s.model_name, s.champion_alias)
    assert registry.champion_version(s) is None

    again = bootstrap(s, trainer_settings=trainer_settings)

    assert (again.version, again.created) == (1, False)
    assert again.update is not None and again.update.version == 1
    assert registry.champion_version(s) == 1
    updates = [value for _, value in read_all(s, s.topics.model_updates)]
    assert [(u["version"], u["previous_version"]) for u in updates] == [(1, None), (1, None)]


def test_bootstrap_resumed_gives_the_version_its_number_before_promoting(
    isolated_settings: Settings, trainer_settings: TrainerSettings
) -> None:
    """A first run killed between creating version 1 and writing its number into
    persona_model.json (the document still says null) and before the alias moved: the next run
    completes the document, then promotes. Bootstrap's own resume copy promoted it as it was."""
    s = isolated_settings
    bootstrap(s, trainer_settings=trainer_settings)
    mlflow_client = registry.client(s)
    run_id = mlflow_client.get_model_version(s.model_name, "1").run_id
    pending = registry.load_version(s, 1).to_dict()
    pending["version"] = None
    mlflow_client.log_dict(run_id, pending, registry.MODEL_ARTIFACT)
    mlflow_client.delete_registered_model_alias(s.model_name, s.champion_alias)

    again = bootstrap(s, trainer_settings=trainer_settings)

    assert (again.version, again.created) == (1, False) and again.update is not None
    document = json.loads(
        Path(mlflow_client.download_artifacts(run_id, registry.MODEL_ARTIFACT)).read_text()
    )
    assert document["version"] == 1
    assert registry.champion_version(s) == 1
