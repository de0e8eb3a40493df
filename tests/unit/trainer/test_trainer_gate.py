"""Quality gate: every check fails on its own and the reasons are all reported."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.gate import evaluate_gate, silhouette


def _gate(**overrides: object):
    args = {
        "n_samples": 900,
        "cluster_sizes": np.array([300, 300, 300]),
        "centroids": np.zeros((3, 10)),
        "silhouette_new": 0.50,
        "silhouette_champion": 0.52,
        "min_samples": 300,
        "min_cluster_size": 20,
        "silhouette_margin": 0.05,
    }
    args.update(overrides)
    return evaluate_gate(**args)  # type: ignore[arg-type]


def test_passes_when_all_checks_hold() -> None:
    result = _gate()
    assert result.passed
    assert result.failures == ()
    assert result.reason == "all checks passed"
    assert result.metrics == {
        "gate_n_samples": 900.0,
        "gate_smallest_cluster": 300.0,
        "silhouette": 0.50,
        "champion_silhouette": 0.52,
    }


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"n_samples": 299}, "only 299 rows"),
        ({"cluster_sizes": np.array([300, 0, 300])}, "cluster(s) [1] hold fewer than 20"),
        ({"centroids": np.array([[np.nan] * 10] * 3)}, "NaN or infinite"),
        ({"silhouette_new": 0.46}, "silhouette 0.4600 is worse than the champion's 0.5200"),
        ({"silhouette_new": float("nan")}, "silhouette nan"),
    ],
)
def test_each_check_fails_alone(overrides: dict[str, object], needle: str) -> None:
    result = _gate(**overrides)
    assert not result.passed
    assert len(result.failures) == 1
    assert needle in result.failures[0]


def test_all_failures_are_reported() -> None:
    result = _gate(n_samples=10, cluster_sizes=np.array([10, 0, 0]), silhouette_new=0.1)
    assert len(result.failures) == 3
    assert result.reason == "; ".join(result.failures)


def test_silhouette_is_minus_one_for_a_single_cluster() -> None:
    x = np.random.default_rng(0).normal(size=(50, 10))
    sample = np.arange(50)
    assert silhouette(x, np.zeros(50, dtype=int), sample) == -1.0
    labels = (x[:, 0] > 0).astype(int)
    assert -1.0 < silhouette(x, labels, sample) < 1.0
