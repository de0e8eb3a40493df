"""The calibrated tests: calibration on drift-free windows, power on each drift scenario."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from monitor.stats import Reference, label_window, run_tests
from personas.model import CentroidModel

Draw = Callable[..., np.ndarray]


def _verdicts(ref: Reference, draw: Draw, n: int, reps: int, seed: int, **drift: object) -> dict:
    rng = np.random.default_rng(seed)
    failed: dict[str, int] = {"any": 0}
    for _ in range(reps):
        results = run_tests(ref, label_window(ref.model, draw(rng, n, **drift)))
        failed["any"] += any(r.failed for r in results)
        for r in results:
            failed[r.name] = failed.get(r.name, 0) + r.failed
    return failed


def test_false_alarms_on_drift_free_windows_stay_near_one_percent(
    january: Reference, draw: Draw
) -> None:
    failed = _verdicts(january, draw, 115, 400, seed=11)
    # 6 tests at α = 0.0025: ≤ 1.5 % expected; 400 windows: allow up to 3 % (binomial noise)
    assert failed["any"] <= 12
    assert set(failed) == {
        "any",
        "distance_shift",
        "persona_mix",
        "residual_mean",
        "far_tail",
        "persona_shift",
        "persona_spread",
    }


@pytest.mark.parametrize(
    ("drift", "test_name"),
    [
        ({"std": 3.1}, "distance_shift"),
        ({"shift": 1.0}, "residual_mean"),
        ({"new_share": 0.10}, "far_tail"),
        ({"mix": (0.6, 0.2, 0.2)}, "persona_mix"),
    ],
)
def test_each_drift_scenario_is_caught_by_its_test(
    january: Reference, draw: Draw, drift: dict, test_name: str
) -> None:
    failed = _verdicts(january, draw, 115, 40, seed=12, **drift)
    assert failed["any"] >= 36  # ≥ 90 % of single 115-event windows
    assert failed[test_name] >= 30


def test_one_sided_tests_do_not_flag_a_better_fit(january: Reference, draw: Draw) -> None:
    """After a retrain on a drifted month, tighter data than the reference is not drift."""
    failed = _verdicts(january, draw, 500, 20, seed=13, std=1.5)
    assert failed["distance_shift"] == 0
    assert failed["far_tail"] == 0


def test_results_carry_scores_and_readable_details(january: Reference, draw: Draw) -> None:
    window = label_window(january.model, draw(np.random.default_rng(5), 200, std=3.1))
    results = {r.name: r for r in run_tests(january, window, alpha=0.0025)}
    shift = results["distance_shift"]
    assert shift.failed and shift.p_value < 1e-6 and 0.5 < shift.statistic <= 1.0
    assert shift.threshold == 0.0025
    assert "median distance" in shift.detail
    assert "Sustainable Steve" in results["persona_mix"].detail
    assert results["far_tail"].detail.startswith(
        f"{round(results['far_tail'].statistic * 200)} of 200"
    )


def test_tests_can_be_chosen(january: Reference, draw: Draw) -> None:
    window = label_window(january.model, draw(np.random.default_rng(6), 100))
    names = [r.name for r in run_tests(january, window, names=("far_tail", "persona_mix"))]
    assert names == ["far_tail", "persona_mix"]


def test_reference_precomputes_its_persona_frame(vendor_model: CentroidModel, draw: Draw) -> None:
    x = draw(np.random.default_rng(1), 300)
    ref = Reference.build(vendor_model, x)
    assert ref.frame.n == 300 and int(ref.frame.counts.sum()) == 300
    assert ref.beyond_q99 == int((ref.frame.distance > ref.q99).sum()) == 3
    np.testing.assert_allclose(ref.residual_mean, ref.frame.residual.mean(axis=0))
    with pytest.raises(ValueError, match="reference sample"):
        Reference.build(vendor_model, x[:10])


def test_reference_of_a_champion_fitted_on_it_gets_leave_one_out_distances(
    vendor_model: CentroidModel, draw: Draw
) -> None:
    """In-sample distances are biased low; without the correction false alarms multiply."""
    x = draw(np.random.default_rng(8), 600)
    index = vendor_model.label(x).index
    fitted = np.array([x[index == k].mean(axis=0) for k in range(3)])
    champion = CentroidModel(fitted, vendor_model.persona_ids, vendor_model.persona_names)
    raw = champion.label(x)
    ref = Reference.build(champion, x)
    n = np.bincount(raw.index, minlength=3)[raw.index]
    np.testing.assert_allclose(ref.frame.distance, raw.distance * n / (n - 1))
    # vendor centroids were not fitted on this sample: nothing to correct
    vendor_ref = Reference.build(vendor_model, x)
    np.testing.assert_allclose(vendor_ref.frame.distance, vendor_model.label(x).distance)


def test_distance_test_is_unbiased_when_the_champion_was_fitted_on_its_reference(
    vendor_model: CentroidModel, draw: Draw
) -> None:
    """Mean P(window distance > reference distance) over drift-free windows must be 0.5.

    Uncorrected in-sample distances give 0.513 ± 0.002 here (false alarms ×2–5); corrected 0.501.
    """
    rng = np.random.default_rng(21)
    aucs = []
    for _ in range(100):
        x = draw(rng, 300)
        index = vendor_model.label(x).index
        fitted = np.array([x[index == k].mean(axis=0) for k in range(3)])
        champion = CentroidModel(fitted, vendor_model.persona_ids, vendor_model.persona_names)
        ref = Reference.build(champion, x)
        window = label_window(champion, draw(rng, 2000))
        (result,) = run_tests(ref, window, names=("distance_shift",))
        aucs.append(result.statistic)
    assert abs(float(np.mean(aucs)) - 0.5) < 0.006
