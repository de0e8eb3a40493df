"""Best-k experiment logged to the real MLflow: nested runs, metrics, plot, recommendation."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from trainer_helpers import FEB, blobs, insert_labels

from personas import registry
from personas.catalogue import Catalogue
from personas.model import CentroidModel
from personas.settings import Settings
from trainer.data import load_range
from trainer.explore import explore
from trainer.settings import TrainerSettings


def test_explore_on_a_postgres_range_logs_nested_runs(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
    unique: str,
) -> None:
    s = isolated_settings
    ts = trainer_settings.model_copy(update={"explore_experiment": f"explore-{unique}"})
    x, _ = blobs(catalogue.centroids, 200, 2.0, seed=40)
    insert_labels(s, vendor_model, x, FEB, timedelta(days=7))
    insert_labels(s, vendor_model, x[:30] + 50.0, FEB + timedelta(days=7), timedelta(days=1))

    frame = load_range(s, FEB, FEB + timedelta(days=7), max_rows=10_000, seed=1)
    assert len(frame) == 600
    result = explore(s, frame, k_min=2, k_max=5, data_label="feb week 1", trainer_settings=ts)

    assert result.recommended_k == 3
    mlflow_client = registry.client(s)
    experiment = mlflow_client.get_experiment_by_name(ts.explore_experiment)
    runs = mlflow_client.search_runs([experiment.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.run_id]
    assert sorted(r.data.params["k"] for r in children) == ["2", "3", "4", "5"]
    for run in children:
        assert set(run.data.metrics) == {
            "silhouette",
            "calinski_harabasz",
            "davies_bouldin",
            "inertia",
        }
    parent = mlflow_client.get_run(result.run_id)
    assert parent.data.metrics["recommended_k"] == 3.0
    assert parent.data.tags["recommendation"] == result.reason
    assert parent.data.params["n_samples"] == "600"
    artifacts = sorted(a.path for a in mlflow_client.list_artifacts(result.run_id))
    assert artifacts == ["best_k.json", "best_k.png"]
    png = mlflow_client.download_artifacts(result.run_id, "best_k.png")
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
