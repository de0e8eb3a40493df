"""Persona identity across refits: which new cluster is which existing persona.

K-Means numbers its clusters arbitrarily (and k-means++ differently every seed), so a refit's
cluster 0 is not necessarily persona 0. We match new centroids to the champion's by optimal
assignment (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``) on Euclidean distance:
it minimises the total distance over one-to-one pairings, so two new clusters can never both claim
"Steve" (a greedy nearest match can). A pair farther apart than a threshold is not a persona that
moved a little but something else: it is reported as a candidate persona for a person to decide,
never silently given the old name.

The threshold is relative: a fraction of the smallest distance between two champion centroids
(default 0.5, i.e. halfway to the nearest other persona). It scales with the persona space instead
of hard-coding feature units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Matching", "match_centroids", "match_threshold"]


@dataclass(frozen=True)
class Matching:
    """Result of matching ``new`` rows to ``old`` rows.

    ``old_index[j]`` is the champion row matched to new cluster ``j`` (or -1 when cluster ``j`` got
    no persona because there are more new clusters than old ones); ``distance[j]`` the distance to
    it (NaN when unmatched). ``candidates`` lists new clusters that are not an existing persona:
    unassigned ones and those beyond the threshold.
    """

    old_index: np.ndarray
    distance: np.ndarray
    threshold: float
    candidates: tuple[int, ...]

    @property
    def matched(self) -> tuple[int, ...]:
        """New clusters that keep an existing persona's identity."""
        return tuple(
            j
            for j in range(len(self.old_index))
            if self.old_index[j] >= 0 and j not in self.candidates
        )


def match_threshold(old: np.ndarray, fraction: float) -> float:
    """``fraction`` × the smallest pairwise distance between the rows of ``old``."""
    old = np.asarray(old, dtype=np.float64)
    if old.shape[0] < 2:
        raise ValueError("need at least two centroids to define a matching threshold")
    diff = old[:, None, :] - old[None, :, :]
    dist = np.sqrt((diff**2).sum(axis=-1))
    np.fill_diagonal(dist, np.inf)
    return float(fraction * dist.min())


def match_centroids(old: np.ndarray, new: np.ndarray, threshold: float) -> Matching:
    """Optimal one-to-one assignment of new centroids to old ones (rectangular allowed)."""
    from scipy.optimize import linear_sum_assignment

    old = np.asarray(old, dtype=np.float64)
    new = np.asarray(new, dtype=np.float64)
    if old.ndim != 2 or new.ndim != 2 or old.shape[1] != new.shape[1]:
        raise ValueError(f"centroid shapes {old.shape} and {new.shape} are not comparable")
    cost = np.sqrt(((new[:, None, :] - old[None, :, :]) ** 2).sum(axis=-1))
    rows, cols = linear_sum_assignment(cost)
    old_index = np.full(new.shape[0], -1, dtype=np.int64)
    distance = np.full(new.shape[0], np.nan)
    old_index[rows] = cols
    distance[rows] = cost[rows, cols]
    candidates = tuple(
        j for j in range(new.shape[0]) if old_index[j] < 0 or not distance[j] <= threshold
    )
    return Matching(
        old_index=old_index, distance=distance, threshold=threshold, candidates=candidates
    )
