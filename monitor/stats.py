"""The calibrated drift tests, in the persona frame (docs/facts.md "Drift detection power").

Raw x1..x10 are three-humped mixtures: per-column tests on them are weak and badly calibrated. After
labelling with the champion, every event has an assigned centroid, a residual ``x − c`` and a
distance ``‖x − c‖``; drift in anything that matters to the personas moves one of these. Four tests,
each at the same α, combined by OR (Bonferroni: 4 × 0.0025 ≈ 1 % false alarms per window):

``distance_shift``  one-sided Mann-Whitney U, window distances > reference distances
                    (the personas fit worse: variance grows, the original March);
``persona_mix``     chi-squared homogeneity of persona counts, window vs reference (a 2 × k table,
                    so the reference's sampling error is accounted for: goodness of fit against
                    reference shares taken as exact gives 10–67 % false alarms on small references);
``residual_mean``   two-sample Hotelling T² on residual vectors (a mean shift of the data);
``far_tail``        one-sided Fisher exact test on the count of events beyond the reference's 99th
                    percentile of distance (a small, far-away new group: a new persona).

All one-sided tests only flag a *worse* fit, so judging data that fits better than the reference
(after a retrain on a drifted month) is not drift. Cost: ~10 ms for a 10,000-event window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from personas.model import CentroidModel

__all__ = ["LabelledWindow", "Reference", "TestResult", "label_window", "run_tests"]


@dataclass(frozen=True)
class TestResult:
    name: str
    statistic: float
    p_value: float
    threshold: float
    failed: bool
    detail: str


@dataclass(frozen=True)
class LabelledWindow:
    """A batch labelled by one model, in the persona frame."""

    index: np.ndarray  # centroid row per event
    distance: np.ndarray
    residual: np.ndarray  # (n, d)
    counts: np.ndarray  # events per centroid row

    @property
    def n(self) -> int:
        return int(self.distance.shape[0])


def label_window(model: CentroidModel, features: np.ndarray) -> LabelledWindow:
    """Label with ``model`` and compute residuals; cheap (one matrix product)."""
    x = np.asarray(features, dtype=np.float64).reshape(-1, model.centroids.shape[1])
    labels = model.label(x)
    residual = x - model.centroids[labels.index]
    counts = np.bincount(labels.index, minlength=model.n_personas)
    return LabelledWindow(labels.index, labels.distance, residual, counts)


@dataclass(frozen=True)
class Reference:
    """The champion's reference sample in its own persona frame, precomputed once per champion."""

    model: CentroidModel
    frame: LabelledWindow
    q99: float
    beyond_q99: int
    residual_mean: np.ndarray
    residual_scatter: np.ndarray  # Σ (r − mean)(r − mean)ᵀ
    features: np.ndarray

    @classmethod
    def build(cls, model: CentroidModel, features: np.ndarray) -> Reference:
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 20 or x.shape[1] != model.centroids.shape[1]:
            raise ValueError(f"reference sample must be (n ≥ 20, {model.centroids.shape[1]})")
        frame = _leave_one_out(model, label_window(model, x))
        q99 = float(np.quantile(frame.distance, 0.99))
        centred = frame.residual - frame.residual.mean(axis=0)
        return cls(
            model=model,
            frame=frame,
            q99=q99,
            beyond_q99=int((frame.distance > q99).sum()),
            residual_mean=frame.residual.mean(axis=0),
            residual_scatter=centred.T @ centred,
            features=x,
        )

    @property
    def version(self) -> int:
        return self.model.version


def _leave_one_out(model: CentroidModel, frame: LabelledWindow) -> LabelledWindow:
    """Undo the in-sample bias of a champion fitted on its own reference.

    K-Means puts each centroid at the mean of its reference points, so reference residuals are
    shrunk: E‖x − c‖² = σ²d(1 − 1/n) in-sample vs σ²d(1 + 1/n) for new data. Measured, that
    doubles to quintuples the false alarms of the distance tests at 500–5,000-event windows. For a
    centroid that *is* the mean of its n points, the leave-one-out residual is exactly
    ``(x − c)·n/(n − 1)``. A centroid counts as fitted when it lies within a quarter of the
    sampling error (‖c − mean‖ < ¼·√(mean d² / n)) of the mean; others (e.g. vendor centroids
    judged on fresh data) are left alone.
    """
    residual = frame.residual.copy()
    distance = frame.distance.copy()
    for k in range(model.n_personas):
        members = frame.index == k
        n = int(members.sum())
        if n < 2:
            continue
        gap = float(np.linalg.norm(frame.residual[members].mean(axis=0)))
        spread = float(np.sqrt(np.mean(frame.distance[members] ** 2) / n))
        if gap < 0.25 * spread:
            scale = n / (n - 1)
            residual[members] *= scale
            distance[members] *= scale
    return LabelledWindow(frame.index, distance, residual, frame.counts)


def _mann_whitney(window: LabelledWindow, ref: Reference, alpha: float) -> TestResult:
    from scipy.stats import mannwhitneyu

    res = mannwhitneyu(
        window.distance, ref.frame.distance, alternative="greater", method="asymptotic"
    )
    n1, n2 = window.n, ref.frame.n
    auc = float(res.statistic) / (n1 * n2)  # P(window distance > reference distance)
    p = float(res.pvalue)
    return TestResult(
        "distance_shift",
        auc,
        p,
        alpha,
        p < alpha,
        f"median distance {np.median(window.distance):.2f} vs reference "
        f"{np.median(ref.frame.distance):.2f}; P(window > reference) = {auc:.3f}",
    )


def _chi_squared(window: LabelledWindow, ref: Reference, alpha: float) -> TestResult:
    from scipy.stats import chi2_contingency

    table = np.vstack([window.counts, ref.frame.counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    shares_w = window.counts / max(window.n, 1)
    shares_r = ref.frame.counts / max(ref.frame.n, 1)
    detail = "shares " + ", ".join(
        f"{name}: {w:.2f} vs {r:.2f}"
        for name, w, r in zip(ref.model.persona_names, shares_w, shares_r, strict=True)
    )
    if table.shape[1] < 2:
        return TestResult("persona_mix", 0.0, 1.0, alpha, False, detail)
    stat, p, _, _ = chi2_contingency(table, correction=False)
    return TestResult("persona_mix", float(stat), float(p), alpha, float(p) < alpha, detail)


def _hotelling(window: LabelledWindow, ref: Reference, alpha: float) -> TestResult:
    from scipy.stats import f as f_dist

    n1, n2 = window.n, ref.frame.n
    d = window.residual.shape[1]
    dof = n1 + n2 - d - 1
    if dof < 1:
        return TestResult("residual_mean", 0.0, 1.0, alpha, False, "too few events")
    mean_w = window.residual.mean(axis=0)
    centred = window.residual - mean_w
    pooled = (centred.T @ centred + ref.residual_scatter) / (n1 + n2 - 2)
    diff = mean_w - ref.residual_mean
    try:
        solved = np.linalg.solve(pooled, diff)
    except np.linalg.LinAlgError:
        solved = np.linalg.pinv(pooled) @ diff
    t2 = float(n1 * n2 / (n1 + n2) * diff @ solved)
    f_stat = t2 * dof / (d * (n1 + n2 - 2))
    p = float(f_dist.sf(f_stat, d, dof))
    top = np.argsort(-np.abs(diff))[:2]
    names = ref.model.feature_names
    moved = ", ".join(f"{names[i]} {diff[i]:+.2f}" for i in top)
    return TestResult(
        "residual_mean", t2, p, alpha, p < alpha, f"T² = {t2:.1f}; largest residual shift {moved}"
    )


def _fisher_tail(window: LabelledWindow, ref: Reference, alpha: float) -> TestResult:
    from scipy.stats import fisher_exact

    beyond = int((window.distance > ref.q99).sum())
    table = [[beyond, window.n - beyond], [ref.beyond_q99, ref.frame.n - ref.beyond_q99]]
    _, p = fisher_exact(table, alternative="greater")
    share = beyond / max(window.n, 1)
    return TestResult(
        "far_tail",
        share,
        float(p),
        alpha,
        float(p) < alpha,
        f"{beyond} of {window.n} events ({share:.1%}) beyond the reference's 99th percentile "
        f"distance {ref.q99:.2f} (reference {ref.beyond_q99 / ref.frame.n:.1%})",
    )


_TESTS = {
    "distance_shift": _mann_whitney,
    "persona_mix": _chi_squared,
    "residual_mean": _hotelling,
    "far_tail": _fisher_tail,
}


def run_tests(
    ref: Reference,
    window: LabelledWindow,
    *,
    alpha: float = 0.0025,
    names: tuple[str, ...] = tuple(_TESTS),
) -> list[TestResult]:
    """Run the named tests of ``window`` (labelled by ``ref.model``) against ``ref``."""
    return [_TESTS[name](window, ref, alpha) for name in names]
