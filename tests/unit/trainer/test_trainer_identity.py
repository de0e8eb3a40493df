"""Persona identity: optimal assignment maps refit clusters back to the right persona."""

from __future__ import annotations

import numpy as np
import pytest

from personas.catalogue import Catalogue
from trainer.identity import match_centroids, match_threshold


def test_shuffled_clusters_map_back_to_their_personas(catalogue: Catalogue) -> None:
    old = catalogue.centroids
    rng = np.random.default_rng(7)
    for perm in ([2, 0, 1], [1, 2, 0], [0, 2, 1], [2, 1, 0]):
        new = old[perm] + rng.normal(0, 0.3, size=old.shape)
        matching = match_centroids(old, new, match_threshold(old, 0.5))
        assert matching.old_index.tolist() == perm
        assert matching.candidates == ()
        assert matching.matched == (0, 1, 2)


def test_optimal_assignment_beats_greedy_nearest() -> None:
    # Both new points are nearest to old[0]; greedy would give both persona 0.
    old = np.array([[0.0, 0.0], [10.0, 0.0]])
    new = np.array([[1.0, 0.0], [3.0, 0.0]])
    matching = match_centroids(old, new, threshold=100.0)
    # total cost: (1->0, 3->1) = 1 + 7 = 8 beats (1->1, 3->0) = 9 + 3 = 12
    assert matching.old_index.tolist() == [0, 1]
    assert matching.distance.tolist() == pytest.approx([1.0, 7.0])


def test_cluster_beyond_threshold_is_a_candidate_not_renamed(catalogue: Catalogue) -> None:
    old = catalogue.centroids
    new = old.copy()
    new[1] = new[1] + 9.0  # far away: no longer Haley
    threshold = match_threshold(old, 0.5)
    matching = match_centroids(old, new, threshold)
    assert matching.candidates == (1,)
    assert matching.matched == (0, 2)
    assert matching.distance[1] == pytest.approx(9.0 * np.sqrt(10))


def test_extra_cluster_is_unassigned() -> None:
    old = np.array([[0.0, 0.0], [10.0, 0.0]])
    new = np.array([[10.2, 0.0], [50.0, 50.0], [0.1, 0.0]])
    matching = match_centroids(old, new, threshold=5.0)
    assert matching.old_index.tolist() == [1, -1, 0]
    assert matching.candidates == (1,)
    assert np.isnan(matching.distance[1])


def test_threshold_is_fraction_of_smallest_centroid_gap() -> None:
    old = np.array([[0.0, 0.0], [3.0, 4.0], [30.0, 0.0]])
    assert match_threshold(old, 0.5) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="two centroids"):
        match_threshold(old[:1], 0.5)
    with pytest.raises(ValueError, match="not comparable"):
        match_centroids(old, np.zeros((3, 5)), 1.0)
