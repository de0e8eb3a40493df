"""The calibrated drift tests, in the persona frame (docs/facts.md "Drift detection power").

Raw x1..x10 are three-humped mixtures: per-column tests on them are weak and badly calibrated. After
labelling with the champion, every event has an assigned centroid, a residual ``x − c`` and a
distance ``‖x − c‖``; drift in anything that matters to the personas moves one of these. Six tests,
each at the same α, combined by OR (Bonferroni: 6 × 0.0025 ≈ 1.5 % false alarms per window):

``distance_shift``  one-sided Mann-Whitney U, window distances > reference distances
                    (the personas fit worse: variance grows, the original March);
``persona_mix``     chi-squared homogeneity of persona counts, window vs reference (a 2 × k table,
                    so the reference's sampling error is accounted for: goodness of fit against
                    reference shares taken as exact gives 10–67 % false alarms on small references);
``residual_mean``   two-sample Hotelling T² on residual vectors (a mean shift of the data);
``far_tail``        one-sided Fisher exact test on the count of events beyond the reference's 99th
                    percentile of distance (a small, far-away new group: a new persona);
``persona_shift``   Hotelling T² per persona (that persona's window residuals vs its reference
                    residuals), Holm-corrected over the personas tested: shifts that differ between
                    personas, which cancel in the pooled ``residual_mean`` ("Steve more
                    price-sensitive, Haley less");
``persona_spread``  one-sided Mann-Whitney U per persona on distances, Holm-corrected: one persona's
                    answers getting noisier, which the pooled ``distance_shift`` dilutes.

The per-persona tests are families: each persona gets a p-value, Holm's step-down adjusts them so
that the family as a whole fails with probability ≤ α on drift-free data whatever the dependence
between personas (the window's budget is unchanged: one α per named test), and the personas whose
adjusted p-value is below α are the ones reported as moved, with the features that moved.

All one-sided tests only flag a *worse* fit, so judging data that fits better than the reference
(after a retrain on a drifted month) is not drift. Cost: ~15–35 ms for a 10,000-event window
(the per-persona families about double the four pooled tests' cost).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from personas.model import CentroidModel

__all__ = [
    "FeatureShift",
    "LabelledWindow",
    "PersonaResult",
    "PersonaSample",
    "Reference",
    "TestResult",
    "holm",
    "label_window",
    "run_tests",
]

#: Fewest window events of a persona for its own tests; fewer and it is left out of the family
#: (the pooled tests and persona_mix still see it).
MIN_PERSONA_EVENTS = 5


@dataclass(frozen=True)
class FeatureShift:
    """How far one feature's mean residual moved for one persona."""

    feature: str
    shift: float  # window − reference mean residual, in that persona's pooled residual SDs
    p_value: float  # two-sided t test of this feature alone (not corrected)


@dataclass(frozen=True)
class PersonaResult:
    """One persona's part of a per-persona test family."""

    persona: str
    test: str  # "shift" or "spread"
    n: int  # window events of this persona
    statistic: float
    p_value: float  # this persona's own p-value
    adjusted_p: float  # Holm-adjusted over the family; compared with α
    failed: bool
    detail: str
    features: tuple[FeatureShift, ...] = ()  # the features that moved (shift test, when failed)


@dataclass(frozen=True)
class TestResult:
    name: str
    statistic: float
    p_value: float
    threshold: float
    failed: bool
    detail: str
    personas: tuple[PersonaResult, ...] = ()


def holm(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given).

    Rejecting every hypothesis whose adjusted p-value is < α keeps the probability of any false
    rejection ≤ α under any dependence; the smallest adjusted value is Bonferroni's m · min p, so
    "the family fails" has exactly Bonferroni's size, and Holm only adds power to name more than
    one persona.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


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
class PersonaSample:
    """One persona's reference events in the persona frame (for the per-persona tests)."""

    n: int
    residual_mean: np.ndarray
    residual_scatter: np.ndarray  # Σ (r − mean)(r − mean)ᵀ over this persona's events
    distance: np.ndarray

    @classmethod
    def of(cls, frame: LabelledWindow, k: int) -> PersonaSample:
        members = frame.index == k
        residual = frame.residual[members]
        mean = residual.mean(axis=0) if residual.shape[0] else np.zeros(residual.shape[1])
        centred = residual - mean
        return cls(int(members.sum()), mean, centred.T @ centred, frame.distance[members])


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
    personas: tuple[PersonaSample, ...]  # one per centroid row

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
            personas=tuple(PersonaSample.of(frame, k) for k in range(model.n_personas)),
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
    n1, n2 = window.n, ref.frame.n
    d = window.residual.shape[1]
    if n1 + n2 - d - 1 < 1:
        return TestResult("residual_mean", 0.0, 1.0, alpha, False, "too few events")
    pooled_ref = PersonaSample(n2, ref.residual_mean, ref.residual_scatter, ref.frame.distance)
    t2, p, diff, _, _ = _hotelling_p(window.residual, pooled_ref)
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


def _hotelling_p(
    window_residual: np.ndarray, ref: PersonaSample
) -> tuple[float, float, np.ndarray, np.ndarray, int]:
    """Two-sample Hotelling T² of one persona: (T², p, mean difference, pooled covariance, dof)."""
    from scipy.stats import f as f_dist

    n1, n2 = window_residual.shape[0], ref.n
    d = window_residual.shape[1]
    dof = n1 + n2 - d - 1
    mean_w = window_residual.mean(axis=0)
    centred = window_residual - mean_w
    pooled = (centred.T @ centred + ref.residual_scatter) / (n1 + n2 - 2)
    diff = mean_w - ref.residual_mean
    try:
        solved = np.linalg.solve(pooled, diff)
    except np.linalg.LinAlgError:
        solved = np.linalg.pinv(pooled) @ diff
    t2 = float(n1 * n2 / (n1 + n2) * diff @ solved)
    p = float(f_dist.sf(t2 * dof / (d * (n1 + n2 - 2)), d, dof))
    return t2, p, diff, pooled, dof


def _feature_shifts(
    names: tuple[str, ...],
    diff: np.ndarray,
    pooled: np.ndarray,
    n1: int,
    n2: int,
    dof: int,
    alpha: float,
) -> tuple[FeatureShift, ...]:
    """The features that moved, largest first: those significant alone at α / d (Bonferroni over
    features), or the largest one when the shift is spread too thin for any to be."""
    from scipy.stats import t as t_dist

    sd = np.sqrt(np.maximum(np.diag(pooled), 1e-300))
    z = diff / (sd * np.sqrt(1.0 / n1 + 1.0 / n2))
    p = 2.0 * t_dist.sf(np.abs(z), max(dof, 1))
    order = np.argsort(p, kind="stable")
    chosen = [int(j) for j in order if p[j] < alpha / diff.size] or [int(order[0])]
    return tuple(FeatureShift(names[j], float(diff[j] / sd[j]), float(p[j])) for j in chosen)


def _family(
    name: str,
    results: list[PersonaResult],
    skipped: list[str],
    alpha: float,
) -> TestResult:
    """Holm over the personas tested; the family's p-value is the smallest adjusted one."""
    adjusted = holm([r.p_value for r in results])
    done = tuple(
        replace(r, adjusted_p=float(a), failed=bool(a < alpha))
        for r, a in zip(results, adjusted, strict=True)
    )
    if not done:
        return TestResult(name, 0.0, 1.0, alpha, False, "no persona has enough events")
    best = min(done, key=lambda r: r.adjusted_p)
    moved = [r for r in done if r.failed]
    lines = [f"{r.persona}: {r.detail} (adjusted p = {r.adjusted_p:.1e})" for r in moved]
    detail = (
        "; ".join(lines)
        if moved
        else f"no persona moved (smallest adjusted p {best.adjusted_p:.2g})"
    )
    if skipped:
        detail += f"; not tested (< {MIN_PERSONA_EVENTS} events): {', '.join(skipped)}"
    return TestResult(name, best.statistic, best.adjusted_p, alpha, bool(moved), detail, done)


def _persona_shift(window: LabelledWindow, ref: Reference, alpha: float) -> TestResult:
    names = ref.model.feature_names
    results: list[PersonaResult] = []
    skipped: list[str] = []
    for k, persona in enumerate(ref.model.persona_names):
        sample = ref.personas[k]
        residual = window.residual[window.index == k]
        n1, d = residual.shape
        if n1 < MIN_PERSONA_EVENTS or sample.n < d + 2:
            skipped.append(persona)
            continue
        t2, p, diff, pooled, dof = _hotelling_p(residual, sample)
        features = _feature_shifts(names, diff, pooled, n1, sample.n, dof, alpha)
        moved = ", ".join(f"{f.feature} {f.shift:+.2f}σ" for f in features)
        results.append(
            PersonaResult(
                persona, "shift", n1, t2, p, p, False, f"T² = {t2:.1f}; {moved}", features
            )
        )
    return _family("persona_shift", results, skipped, alpha)


def _persona_spread(window: LabelledWindow, ref: Reference, alpha: float) -> TestResult:
    from scipy.stats import mannwhitneyu

    results: list[PersonaResult] = []
    skipped: list[str] = []
    for k, persona in enumerate(ref.model.persona_names):
        sample = ref.personas[k]
        distance = window.distance[window.index == k]
        n1 = distance.size
        if n1 < MIN_PERSONA_EVENTS or sample.n < MIN_PERSONA_EVENTS:
            skipped.append(persona)
            continue
        res = mannwhitneyu(distance, sample.distance, alternative="greater", method="asymptotic")
        auc = float(res.statistic) / (n1 * sample.n)
        detail = (
            f"median distance {np.median(distance):.2f} vs reference "
            f"{np.median(sample.distance):.2f}; P(window > reference) = {auc:.3f}"
        )
        p = float(res.pvalue)
        results.append(PersonaResult(persona, "spread", n1, auc, p, p, False, detail))
    return _family("persona_spread", results, skipped, alpha)


_TESTS = {
    "distance_shift": _mann_whitney,
    "persona_mix": _chi_squared,
    "residual_mean": _hotelling,
    "far_tail": _fisher_tail,
    "persona_shift": _persona_shift,
    "persona_spread": _persona_spread,
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
