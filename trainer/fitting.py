"""K-Means fitting and the numbers derived from a fit: outlier distance and reference sample.

Outlier distance (the chi-square rule of personas/model.py, made robust): within a persona the
data are roughly isotropic normal with std σ, so ‖x − c‖²/σ² follows χ²(d). We estimate σ² from
the *median* squared distance, σ̂² = median(‖x − c‖²) / χ²₀.₅(d), and set the threshold at
σ̂·√χ²_q(d) (q = 0.999 by default, ≈ 1 flagged in 1000 in-persona records). The median keeps a few
real outliers in the training range from inflating the threshold, and unlike the empirical 99.9th
percentile it is stable with a few hundred rows (where that percentile is simply the maximum).
For the vendor data (σ = 2, d = 10) it gives ≈ 10.9, the value model.py documents.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["Fit", "empirical_quantile_distance", "fit_kmeans", "outlier_distance"]


@dataclass(frozen=True)
class Fit:
    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    n_iter: int
    seconds: float = 0.0  # wall time of the fit (logged as fit_seconds, exported as a metric)

    @property
    def sizes(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.centroids.shape[0])


def fit_kmeans(x: np.ndarray, init: np.ndarray | int, *, seed: int) -> Fit:
    """KMeans started from given centroids (one run, deterministic) or k-means++ with k = init."""
    import warnings

    from sklearn.cluster import KMeans

    if isinstance(init, int):
        km = KMeans(n_clusters=init, init="k-means++", n_init=4, random_state=seed)
    else:
        start = np.asarray(init, dtype=np.float64)
        km = KMeans(n_clusters=start.shape[0], init=start, n_init=1, random_state=seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # Fewer distinct points than clusters is caught by the gate (empty cluster), not a warning.
        warnings.simplefilter("ignore")
        km.fit(x)
    return Fit(
        seconds=time.perf_counter() - started,
        centroids=np.asarray(km.cluster_centers_, dtype=np.float64),
        labels=np.asarray(km.labels_, dtype=np.int64),
        inertia=float(km.inertia_),
        n_iter=int(km.n_iter_),
    )


def _sq_dist_to_assigned(x: np.ndarray, centroids: np.ndarray, labels: np.ndarray) -> np.ndarray:
    diff = x - centroids[labels]
    return np.asarray(np.einsum("ij,ij->i", diff, diff), dtype=np.float64)


def outlier_distance(
    x: np.ndarray, centroids: np.ndarray, labels: np.ndarray, quantile: float = 0.999
) -> float:
    """Robust chi-square threshold (see module docstring); never below the median distance."""
    from scipy.stats import chi2

    d = x.shape[1]
    sq = _sq_dist_to_assigned(x, centroids, labels)
    if sq.size == 0:
        raise ValueError("no rows to estimate the outlier distance from")
    sigma2 = float(np.median(sq)) / float(chi2.ppf(0.5, d))
    threshold = float(np.sqrt(sigma2 * chi2.ppf(quantile, d)))
    return max(threshold, float(np.sqrt(np.median(sq))), 1e-9)


def empirical_quantile_distance(
    x: np.ndarray, centroids: np.ndarray, labels: np.ndarray, quantile: float = 0.999
) -> float:
    """The plain empirical quantile of distances, logged beside the rule for comparison."""
    return float(np.quantile(np.sqrt(_sq_dist_to_assigned(x, centroids, labels)), quantile))
