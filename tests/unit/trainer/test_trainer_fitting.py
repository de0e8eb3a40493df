"""Fitting, outlier distance, candidate detection and data checks (no services needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from personas.catalogue import FEATURES, Catalogue
from personas.errors import InputFileError
from personas.model import DEFAULT_OUTLIER_DISTANCE, CentroidModel
from trainer.data import check_features, read_table, reference_frame, synthetic_sample
from trainer.fitting import empirical_quantile_distance, fit_kmeans, outlier_distance
from trainer.identity import match_centroids, match_threshold
from trainer.retrain import find_candidates
from trainer.settings import TrainerSettings


def _blobs(centroids: np.ndarray, n: int, std: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([c + rng.normal(0, std, size=(n, centroids.shape[1])) for c in centroids])


def test_outlier_distance_matches_the_chi_square_rule(catalogue: Catalogue) -> None:
    x = _blobs(catalogue.centroids, 2000, 2.0, seed=1)
    labels = np.repeat(np.arange(3), 2000)
    threshold = outlier_distance(x, catalogue.centroids, labels, 0.999)
    assert threshold == pytest.approx(DEFAULT_OUTLIER_DISTANCE, rel=0.03)
    share = float((np.linalg.norm(x - catalogue.centroids[labels], axis=1) > threshold).mean())
    assert share < 0.003


def test_outlier_distance_ignores_a_few_far_rows(catalogue: Catalogue) -> None:
    x = _blobs(catalogue.centroids, 300, 2.0, seed=2)
    labels = np.repeat(np.arange(3), 300)
    clean = outlier_distance(x, catalogue.centroids, labels)
    x[:9] += 60.0  # 1 % gross outliers
    dirty = outlier_distance(x, catalogue.centroids, labels)
    assert dirty == pytest.approx(clean, rel=0.03)
    assert empirical_quantile_distance(x, catalogue.centroids, labels) > 100


def test_fit_from_champion_keeps_order_and_follows_a_shift(catalogue: Catalogue) -> None:
    shift = np.zeros((3, 10))
    shift[0, :2] = 1.5
    x = _blobs(catalogue.centroids + shift, 400, 2.0, seed=3)
    fit = fit_kmeans(x, catalogue.centroids, seed=42)
    assert fit.sizes.tolist() == [400, 400, 400]
    err = np.linalg.norm(fit.centroids - (catalogue.centroids + shift), axis=1)
    assert (err < 0.5).all()


def test_candidates_new_group_is_reported(vendor_model: CentroidModel) -> None:
    ts = TrainerSettings(_env_file=None)  # type: ignore[call-arg]
    normal = _blobs(vendor_model.centroids, 300, 2.0, seed=4)
    threshold = match_threshold(vendor_model.centroids, ts.match_fraction)
    fit = fit_kmeans(normal, vendor_model.centroids, seed=42)
    matching = match_centroids(vendor_model.centroids, fit.centroids, threshold)
    assert find_candidates(normal, vendor_model, fit, matching, ts) == []

    new_group = np.full((1, 10), 8.0)
    x = np.vstack([normal, _blobs(new_group, 60, 2.0, seed=5)])  # 6 % of the rows
    fit = fit_kmeans(x, vendor_model.centroids, seed=42)
    matching = match_centroids(vendor_model.centroids, fit.centroids, threshold)
    found = find_candidates(x, vendor_model, fit, matching, ts)
    assert len(found) == 1
    assert found[0]["source"] == "k=4 fit"
    assert found[0]["size"] == 60
    assert np.allclose(found[0]["centroid"], 8.0, atol=0.8)


def test_synthetic_sample_and_reference_frame(
    catalogue: Catalogue, vendor_model: CentroidModel
) -> None:
    frame = synthetic_sample(catalogue, 600, 2.0, seed=42)
    assert len(frame) == 600
    assert frame["true_persona_id"].value_counts().sort_index().tolist() == [200, 200, 200]
    again = synthetic_sample(catalogue, 600, 2.0, seed=42)
    pd.testing.assert_frame_equal(frame, again)
    ref = reference_frame(frame, vendor_model, max_rows=500, seed=1)
    assert len(ref) == 500
    assert list(ref.columns) == [*FEATURES, "persona_id", "distance", "true_persona_id"]
    assert (ref["persona_id"] == ref["true_persona_id"]).all()


def test_check_features_and_read_table(tmp_path: Path) -> None:
    frame = pd.DataFrame(np.ones((3, 10)), columns=list(FEATURES))
    frame.loc[1, "x3"] = np.nan
    assert len(check_features(frame, "f")) == 2
    with pytest.raises(InputFileError, match=r"missing feature column\(s\) \['x10'\]"):
        check_features(frame.drop(columns="x10"), "f")
    path = tmp_path / "month.csv"
    frame.to_csv(path, index=False)
    assert len(read_table(path)) == 2
    with pytest.raises(InputFileError, match="no such file"):
        read_table(tmp_path / "missing.csv")
