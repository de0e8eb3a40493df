"""The labelling rule: exact on the centroids, equal to brute force everywhere, strict on input."""

from __future__ import annotations

import numpy as np
import pytest

from personas.catalogue import FEATURES, Catalogue
from personas.errors import InvalidModel
from personas.model import BOOTSTRAP_VERSION, CentroidModel


def brute_force(model: CentroidModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.linalg.norm(x[:, None, :] - model.centroids[None, :, :], axis=2)
    order = np.argsort(d, axis=1)
    rows = np.arange(len(x))
    return order[:, 0], d[rows, order[:, 0]], d[rows, order[:, 1]] - d[rows, order[:, 0]]


def test_vendor_centroids_label_as_themselves(vendor_model: CentroidModel, catalogue: Catalogue):
    labels = vendor_model.label(catalogue.centroids)
    assert labels.persona_id.tolist() == [0, 1, 2]
    assert np.allclose(labels.distance, 0.0, atol=1e-6)
    assert not labels.is_outlier.any()
    assert vendor_model.version == BOOTSTRAP_VERSION
    assert vendor_model.persona_names == (
        "Sustainable Steve",
        "Eco-Conscious Haley",
        "Pragmatic Pat",
    )


@pytest.mark.parametrize("k", [2, 3, 7])
def test_agrees_with_brute_force_on_random_data(k: int):
    rng = np.random.default_rng(k)
    model = CentroidModel(
        centroids=rng.normal(0, 8, size=(k, 10)),
        persona_ids=tuple(range(10, 10 + k)),
        persona_names=tuple(f"p{i}" for i in range(k)),
        outlier_distance=12.0,
    )
    x = rng.normal(0, 10, size=(5000, 10))
    labels = model.label(x)
    idx, dist, margin = brute_force(model, x)
    assert (labels.index == idx).all()
    assert (labels.persona_id == np.array(model.persona_ids)[idx]).all()
    assert np.allclose(labels.distance, dist, atol=1e-6)
    assert np.allclose(labels.margin, margin, atol=1e-6)
    assert (labels.is_outlier == (dist > 12.0)).all()


def test_single_record_and_empty_batch(vendor_model: CentroidModel, catalogue: Catalogue):
    one = vendor_model.label(np.array(catalogue.centroids[2]) + 0.1)
    assert one.persona_id.tolist() == [2]
    empty = vendor_model.label(np.empty((0, 10)))
    assert len(empty) == 0


def test_wrong_feature_count_is_refused(vendor_model: CentroidModel):
    with pytest.raises(ValueError, match="expected 10 features"):
        vendor_model.label(np.zeros((3, 9)))


def test_round_trip_through_document(vendor_model: CentroidModel):
    again = CentroidModel.from_dict(vendor_model.to_dict(), version=7)
    assert again.version == 7
    assert np.array_equal(again.centroids, vendor_model.centroids)
    assert again.persona_names == vendor_model.persona_names


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"centroids": [[float("nan")] * 10] * 3}, "NaN or infinite"),
        ({"centroids": [[0.0] * 9] * 3}, "differ from"),
        ({"persona_ids": [0, 0, 1]}, "duplicate persona ids"),
        ({"persona_names": ["a"]}, "do not match"),
        ({"outlier_distance": -1}, "must be positive"),
        ({"format": "pickle"}, "unknown model format"),
        ({"centroids": "oops"}, "shape|malformed"),
    ],
)
def test_broken_documents_are_refused(vendor_model: CentroidModel, change, message):
    doc = vendor_model.to_dict() | change
    with pytest.raises(InvalidModel, match=message):
        CentroidModel.from_dict(doc)


def test_unknown_persona_ids_are_refused(vendor_model: CentroidModel):
    with pytest.raises(InvalidModel, match="unknown persona ids"):
        CentroidModel.from_dict(vendor_model.to_dict() | {"persona_ids": [0, 1, 9]}).validate(
            known_persona_ids={0, 1, 2}
        )


def test_features_are_x1_to_x10():
    assert tuple(f"x{i}" for i in range(1, 11)) == FEATURES
