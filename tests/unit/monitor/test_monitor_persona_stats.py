"""The per-persona tests (issue #16): Holm's correction, size under the null, power on planted
shifts that cancel in the pooled tests, and which persona and features are reported."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from monitor.stats import MIN_PERSONA_EVENTS, Reference, holm, label_window, run_tests
from personas.model import CentroidModel

Draw = Callable[..., np.ndarray]
STEVE, HALEY, PAT = "Sustainable Steve", "Eco-Conscious Haley", "Pragmatic Pat"


def opposite(features: int = 2, size: float = 1.0) -> np.ndarray:
    """Steve +size, Haley −size in the first ``features`` features (1.0 = 0.5σ at std 2)."""
    moved = np.zeros((3, 10))
    moved[0, :features] = size
    moved[1, :features] = -size
    return moved


def fitted_reference(vendor: CentroidModel, draw: Draw, rng: np.random.Generator) -> Reference:
    """A fresh reference and the champion fitted on it (as a retrain leaves them)."""
    x = draw(rng, 500)
    index = vendor.label(x).index
    centroids = np.array([x[index == k].mean(axis=0) for k in range(3)])
    return Reference.build(CentroidModel(centroids, vendor.persona_ids, vendor.persona_names), x)


def test_holm_adjusts_step_down_and_keeps_the_order() -> None:
    # sorted 0.01, 0.03, 0.04 → ×3, ×2, ×1 = 0.03, 0.06, 0.04 → running max 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm([0.04, 0.01, 0.03]), [0.06, 0.03, 0.06])
    np.testing.assert_allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1
    assert holm([]).size == 0
    p = np.random.default_rng(0).uniform(size=50)
    adjusted = holm(p)
    assert np.all(adjusted >= p)
    assert adjusted.min() == pytest.approx(min(1.0, 50 * p.min()))  # Bonferroni's size


@pytest.mark.parametrize("n", [115, 500])
def test_each_family_fails_at_most_alpha_of_drift_free_windows(
    vendor_model: CentroidModel, draw: Draw, n: int
) -> None:
    """Size under the null, each window against a fresh reference (as the bench measures).

    At α = 0.05 and 400 windows, a calibrated family fails ~20 (±4.4); uncorrected (any persona's
    own p < α) it would fail ~57, so the bound catches a missing or too weak correction.
    """
    rng = np.random.default_rng(31 + n)
    alpha, reps = 0.05, 400
    failed = {"persona_shift": 0, "persona_spread": 0}
    for _ in range(reps):
        ref = fitted_reference(vendor_model, draw, rng)
        window = label_window(ref.model, draw(rng, n))
        for r in run_tests(ref, window, alpha=alpha, names=tuple(failed)):
            failed[r.name] += r.failed
    for name, count in failed.items():
        assert 6 <= count <= 33, (name, count)


def test_opposite_shifts_of_two_personas_are_caught_and_named(
    january: Reference, draw: Draw
) -> None:
    """Steve +0.5σ, Haley −0.5σ in x1, x2: the pooled residual test is blind, the per-persona
    one names both personas, the features and the directions."""
    rng = np.random.default_rng(41)
    caught = pooled = 0
    named: list[set[str]] = []
    for _ in range(30):
        window = label_window(january.model, draw(rng, 500, persona_shift=opposite()))
        results = {r.name: r for r in run_tests(january, window)}
        pooled += results["residual_mean"].failed
        shift = results["persona_shift"]
        caught += shift.failed
        named.append({p.persona for p in shift.personas if p.failed})
    assert caught >= 28
    assert pooled <= 6
    assert sum(names == {STEVE, HALEY} for names in named) >= 24
    assert sum(PAT in names for names in named) <= 2

    window = label_window(january.model, draw(rng, 2000, persona_shift=opposite()))
    (shift,) = run_tests(january, window, names=("persona_shift",))
    parts = {p.persona: p for p in shift.personas}
    steve = {f.feature: f.shift for f in parts[STEVE].features}
    haley = {f.feature: f.shift for f in parts[HALEY].features}
    assert set(steve) == set(haley) == {"x1", "x2"}
    assert all(0.3 < v < 0.7 for v in steve.values())
    assert all(-0.7 < v < -0.3 for v in haley.values())
    assert not parts[PAT].failed
    assert shift.p_value == min(p.adjusted_p for p in shift.personas)
    assert STEVE in shift.detail and HALEY in shift.detail and PAT not in shift.detail


def test_one_persona_getting_noisier_is_caught_by_the_spread_family(
    january: Reference, draw: Draw
) -> None:
    rng = np.random.default_rng(43)
    caught = only_steve = 0
    for _ in range(20):
        window = label_window(january.model, draw(rng, 500, persona_scale=(1.55, 1.0, 1.0)))
        (spread,) = run_tests(january, window, names=("persona_spread",))
        caught += spread.failed
        only_steve += {p.persona for p in spread.personas if p.failed} == {STEVE}
    assert caught >= 19
    assert only_steve >= 18


def test_a_tighter_persona_is_not_drift(january: Reference, draw: Draw) -> None:
    rng = np.random.default_rng(44)
    for _ in range(10):
        window = label_window(january.model, draw(rng, 500, persona_scale=(0.7, 1.0, 1.0)))
        (spread,) = run_tests(january, window, names=("persona_spread",))
        assert not spread.failed


def test_a_persona_with_too_few_events_is_left_out_of_the_family(
    january: Reference, draw: Draw
) -> None:
    x = draw(np.random.default_rng(45), 300)
    window = label_window(january.model, x)
    keep = (window.index != 2) | (np.cumsum(window.index == 2) < MIN_PERSONA_EVENTS)
    window = label_window(january.model, x[keep])  # Pat has MIN_PERSONA_EVENTS - 1 events
    for result in run_tests(january, window, names=("persona_shift", "persona_spread")):
        assert [p.persona for p in result.personas] == [STEVE, HALEY]
        assert f"not tested (< {MIN_PERSONA_EVENTS} events): {PAT}" in result.detail
