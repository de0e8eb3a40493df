"""personas.synthetic: the base generator's statistics and what each drift scenario changes."""

from __future__ import annotations

import numpy as np
import pytest

from personas.catalogue import Catalogue
from personas.synthetic import (
    DEFAULT_NEW_CENTROID,
    Batch,
    Gradual,
    MeanShift,
    MixChange,
    NewPersona,
    VarianceGrowth,
    allocate,
    apply_scenarios,
    generate,
    simulate,
)


@pytest.fixture
def centroids(catalogue: Catalogue) -> np.ndarray:
    return catalogue.centroids


def _batch(centroids: np.ndarray, n: int = 30_000, std: float = 2.0, seed: int = 7) -> Batch:
    return simulate(centroids, n, std, np.random.default_rng(seed))


def test_generate_means_std_and_equal_split(centroids: np.ndarray) -> None:
    X, idx = generate(centroids, 30_000, 2.0, np.random.default_rng(1))
    assert X.shape == (30_000, 10)
    assert np.bincount(idx).tolist() == [10_000, 10_000, 10_000]
    for j in range(3):
        rows = X[idx == j]
        # standard error of a mean: 2 / sqrt(10_000) = 0.02; 5 standard errors
        assert np.abs(rows.mean(axis=0) - centroids[j]).max() < 0.1
        assert np.abs(rows.std(axis=0, ddof=1) - 2.0).max() < 0.06
    # rows are shuffled, not blocked by persona
    assert len(np.unique(idx[:30])) == 3


def test_generate_split_like_make_blobs_and_weights_exact(centroids: np.ndarray) -> None:
    _, idx = generate(centroids, 500, 2.0, np.random.default_rng(1))
    assert np.bincount(idx).tolist() == [167, 167, 166]
    _, idx = generate(centroids, 1000, 2.0, np.random.default_rng(1), weights=[0.6, 0.2, 0.2])
    assert np.bincount(idx).tolist() == [600, 200, 200]


def test_generate_is_deterministic_by_seed(centroids: np.ndarray) -> None:
    a = generate(centroids, 100, 2.0, np.random.default_rng(5))
    b = generate(centroids, 100, 2.0, np.random.default_rng(5))
    c = generate(centroids, 100, 2.0, np.random.default_rng(6))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_generate_rejects_bad_arguments(centroids: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="std"):
        generate(centroids, 10, -1.0, rng)
    with pytest.raises(ValueError, match="2 weights for 3 centroids"):
        generate(centroids, 10, 1.0, rng, weights=[1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        generate(centroids, 10, 1.0, rng, weights=[1, -1, 1])


def test_allocate_largest_remainder() -> None:
    assert allocate(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert allocate(7, [0.5, 0.25, 0.25]).tolist() == [3, 2, 2]
    assert allocate(0, [1, 2]).tolist() == [0, 0]
    assert allocate(5, [0, 1]).tolist() == [0, 5]


def test_default_new_centroid_is_the_fourth_make_blobs_centre(catalogue: Catalogue) -> None:
    from sklearn.datasets import make_blobs

    _, _, centers = make_blobs(
        n_samples=4, n_features=10, centers=4, random_state=42, return_centers=True
    )
    assert np.allclose(centers[:3], catalogue.centroids, atol=1e-8)
    assert np.allclose(centers[3], DEFAULT_NEW_CENTROID)


def test_variance_growth_scales_only_the_noise(centroids: np.ndarray) -> None:
    before = _batch(centroids)
    after = apply_scenarios(before, [VarianceGrowth(1.55)], np.random.default_rng(0))
    assert np.array_equal(after.persona, before.persona)
    assert np.allclose(after.residual, before.residual * 1.55)
    for j in range(3):
        rows = after.X[after.persona == j]
        assert np.abs(rows.std(axis=0, ddof=1) - 3.1).max() < 0.09
        assert np.abs(rows.mean(axis=0) - centroids[j]).max() < 0.16


def test_mean_shift_moves_exactly_the_chosen_features(centroids: np.ndarray) -> None:
    before = _batch(centroids, n=1000)
    after = apply_scenarios(before, [MeanShift((0, 1), 1.0)], np.random.default_rng(0))
    diff = after.X - before.X
    assert np.allclose(diff[:, :2], 1.0)
    assert np.array_equal(diff[:, 2:], np.zeros((1000, 8)))
    assert np.array_equal(after.persona, before.persona)
    with pytest.raises(ValueError, match="column indices"):
        MeanShift((10,), 1.0).apply(before, np.random.default_rng(0), np.ones(1000))


def test_mean_shift_of_one_persona_moves_only_its_rows(centroids: np.ndarray) -> None:
    before = _batch(centroids, n=1000)
    after = apply_scenarios(before, [MeanShift((0,), 2.0, personas=(1,))], np.random.default_rng(0))
    diff = after.X - before.X
    assert np.allclose(diff[before.persona == 1, 0], 2.0)
    assert np.array_equal(diff[before.persona != 1], np.zeros(((before.persona != 1).sum(), 10)))
    assert np.array_equal(diff[:, 1:], np.zeros((1000, 9)))
    with pytest.raises(ValueError, match="personas must be indices"):
        MeanShift((0,), 1.0, personas=(3,)).apply(before, np.random.default_rng(0), np.ones(1000))


def test_new_persona_moves_exact_share_and_keeps_noise(centroids: np.ndarray) -> None:
    before = _batch(centroids, n=10_000)
    after = apply_scenarios(before, [NewPersona(0.1)], np.random.default_rng(0))
    moved = after.persona == 3
    assert int(moved.sum()) == 1000
    assert after.centroids.shape == (4, 10)
    assert np.allclose(after.centroids[3], DEFAULT_NEW_CENTROID)
    assert np.allclose(after.residual, before.residual)
    assert np.array_equal(after.X[~moved], before.X[~moved])
    # taken from every persona in proportion (3,333 each: ~333 ± 3 standard deviations)
    taken = np.bincount(before.persona[moved], minlength=3)
    assert np.all(np.abs(taken - 333) < 60)


def test_mix_change_reaches_exact_counts_with_fewest_moves(centroids: np.ndarray) -> None:
    before = _batch(centroids, n=9000)
    after = apply_scenarios(before, [MixChange((0.6, 0.2, 0.2))], np.random.default_rng(0))
    assert np.bincount(after.persona).tolist() == [5400, 1800, 1800]
    moved = after.persona != before.persona
    assert int(moved.sum()) == 2400  # personas 1 and 2 each give 1,200 rows to persona 0
    assert np.all(after.persona[moved] == 0)
    assert np.allclose(after.residual, before.residual)
    assert np.array_equal(after.X[~moved], before.X[~moved])
    with pytest.raises(ValueError, match="2 mix weights for 3 personas"):
        apply_scenarios(before, [MixChange((0.5, 0.5))], np.random.default_rng(0))


def test_gradual_mean_shift_grows_with_time(centroids: np.ndarray) -> None:
    before = _batch(centroids, n=101)
    after = apply_scenarios(before, [Gradual(MeanShift((4,), 2.0))], np.random.default_rng(0))
    diff = (after.X - before.X)[:, 4]
    assert np.allclose(diff, 2.0 * before.t)
    assert diff[0] == 0.0 and diff[-1] == pytest.approx(2.0)


def test_gradual_with_start_and_new_persona(centroids: np.ndarray) -> None:
    before = _batch(centroids, n=20_000)
    scenario = Gradual(NewPersona(0.2), start=0.5)
    after = apply_scenarios(before, [scenario], np.random.default_rng(0))
    new = after.persona == 3
    assert not new[before.t < 0.5].any()
    late = new[before.t > 0.9].mean()
    assert 0.15 < late <= 0.2 + 0.03
    # expected total: 0.2 · mean(ramp) = 0.2 · 0.25 = 5 % of 20,000
    assert int(new.sum()) == round(float(0.2 * np.clip((before.t - 0.5) / 0.5, 0, 1).sum()))


def test_scenarios_compose_in_order(centroids: np.ndarray) -> None:
    before = _batch(centroids, n=3000)
    after = apply_scenarios(
        before,
        [MixChange((0.5, 0.25, 0.25)), NewPersona(0.1), VarianceGrowth(2.0)],
        np.random.default_rng(3),
    )
    counts = np.bincount(after.persona, minlength=4)
    assert counts.sum() == 3000 and counts[3] == 300
    assert np.allclose(after.residual, before.residual * 2.0)
