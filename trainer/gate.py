"""Quality gate: a refit replaces the champion only if it is at least as good on the same data.

Checks (every failed check is reported, not only the first, so the MLflow run and the alert say
everything that is wrong):

* ``min_samples`` — the range held enough rows to fit k centroids in 10 dimensions;
* ``min_cluster_size`` — no cluster is empty or nearly so (an empty cluster is a persona that
  vanished or a bad start, not something to serve);
* ``finite`` — no NaN or infinite centroid coordinate;
* ``silhouette`` — the refit's silhouette is not worse than the champion's *on the same rows* by
  more than a margin. Both are computed on one seeded sample of the training rows, because
  silhouette is O(n²) and because comparing two models is only fair on identical data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GateResult", "evaluate_gate", "silhouette"]


@dataclass(frozen=True)
class GateResult:
    passed: bool
    failures: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return "; ".join(self.failures) if self.failures else "all checks passed"


def silhouette(x: np.ndarray, labels: np.ndarray, sample: np.ndarray) -> float:
    """Silhouette of ``labels`` on the rows ``sample``; -1 when fewer than two clusters are used.

    -1 (the worst possible score) rather than NaN so that a degenerate champion labelling can
    never block a better refit, and a degenerate refit always fails the comparison.
    """
    from sklearn.metrics import silhouette_score

    lab = labels[sample]
    if len(np.unique(lab)) < 2 or len(np.unique(lab)) >= len(lab):
        return -1.0
    return float(silhouette_score(x[sample], lab))


def evaluate_gate(
    *,
    n_samples: int,
    cluster_sizes: np.ndarray,
    centroids: np.ndarray,
    silhouette_new: float,
    silhouette_champion: float,
    min_samples: int,
    min_cluster_size: int,
    silhouette_margin: float,
) -> GateResult:
    failures: list[str] = []
    if n_samples < min_samples:
        failures.append(f"only {n_samples} rows in the range, the gate needs {min_samples}")
    smallest = int(cluster_sizes.min()) if cluster_sizes.size else 0
    if smallest < min_cluster_size:
        empty = [int(i) for i in np.flatnonzero(cluster_sizes < min_cluster_size)]
        failures.append(
            f"cluster(s) {empty} hold fewer than {min_cluster_size} rows (smallest: {smallest})"
        )
    if not np.isfinite(centroids).all():
        failures.append("centroids contain NaN or infinite values")
    if not math.isfinite(silhouette_new) or (
        silhouette_new < silhouette_champion - silhouette_margin
    ):
        failures.append(
            f"silhouette {silhouette_new:.4f} is worse than the champion's "
            f"{silhouette_champion:.4f} on the same data by more than {silhouette_margin}"
        )
    metrics = {
        "gate_n_samples": float(n_samples),
        "gate_smallest_cluster": float(smallest),
        "silhouette": float(silhouette_new),
        "champion_silhouette": float(silhouette_champion),
    }
    return GateResult(passed=not failures, failures=tuple(failures), metrics=metrics)
