"""Best-k recommendation and the CLI's offline path (no MLflow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from persona_cli import build_app
from personas.catalogue import FEATURES, Catalogue
from personas.errors import ConfigError
from trainer.explore import KScore, elbow, explore, recommend


def test_three_vendor_personas_give_k3(catalogue: Catalogue) -> None:
    rng = np.random.default_rng(0)
    x = np.vstack([c + rng.normal(0, 2.0, size=(200, 10)) for c in catalogue.centroids])
    frame = pd.DataFrame(x, columns=list(FEATURES))
    result = explore(None, frame, k_min=2, k_max=6, log_to_mlflow=False)  # type: ignore[arg-type]
    assert [s.k for s in result.scores] == [2, 3, 4, 5, 6]
    assert result.recommended_k == 3
    assert result.reason.startswith("k=3: one more cluster cuts inertia by only ")
    # Steve and Haley are close: silhouette and Davies-Bouldin merge them (k=2), the elbow does not.
    assert "Calinski-Harabasz agree" in result.reason
    assert "silhouette prefers k=2" in result.reason


def test_elbow_is_the_first_small_gain() -> None:
    assert elbow([1, 2, 3, 4, 5, 6], [100, 60, 20, 19, 18, 17]) == 3
    assert elbow([2, 3], [10, 5]) is None


def test_no_elbow_in_range_says_widen() -> None:
    scores = [
        KScore(2, 0.50, 10.0, 0.9, 100.0),
        KScore(3, 0.60, 12.0, 0.8, 50.0),
        KScore(4, 0.40, 11.0, 1.0, 25.0),
    ]
    k, reason = recommend(scores)
    assert k == 4
    assert "(widen the range)" in reason
    assert "silhouette prefers k=3" in reason


def test_cli_explore_offline(tmp_path: Path, catalogue: Catalogue) -> None:
    rng = np.random.default_rng(1)
    x = np.vstack([c + rng.normal(0, 2.0, size=(100, 10)) for c in catalogue.centroids])
    path = tmp_path / "slice.csv"
    pd.DataFrame(x, columns=list(FEATURES)).to_csv(path, index=False)
    result = CliRunner().invoke(
        build_app(), ["train", "explore", "--data", str(path), "--k-max", "5", "--no-mlflow"]
    )
    assert result.exit_code == 0, result.output
    assert "recommended k=3" in result.output
    assert len([line for line in result.output.splitlines() if line[:3].strip().isdigit()]) == 4


@pytest.mark.parametrize("args", [["--k-min", "1"], ["--k-min", "5", "--k-max", "4"]])
def test_cli_explore_rejects_bad_k(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "slice.csv"
    pd.DataFrame(np.ones((20, 10)), columns=list(FEATURES)).to_csv(path, index=False)
    result = CliRunner().invoke(
        build_app(), ["train", "explore", "--data", str(path), "--no-mlflow", *args]
    )
    assert isinstance(result.exception, ConfigError)
    assert result.exception.exit_code == 2
    assert "k range" in str(result.exception)
