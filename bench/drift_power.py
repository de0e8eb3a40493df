"""Detection and false-alarm rates of the monitor's verdict, by seeded simulation.

Reference: a January-like month (vendor centroids, persona mix 1/3 each, isotropic std 2), the
champion being the reference's own cluster means (as a retrain would fit them). Each repetition draws
two consecutive windows of the scenario and records whether the verdict (the six calibrated tests
of monitor/stats.py, OR, α = 0.0025 each) fails the first window, whether it fails either of the
two ("within two windows"), and whether it fails both (the default policy's ``drift`` status, which
sends the retrain command, by the second window; for S0 that is a false retrain). Baseline, measured in the same run on the same windows: the seed's
check, per-column two-sample K-S on raw x1..x10 with drift if ≥ 50 % of the columns drift at
p < 0.05 (what Evidently's DataDriftPreset does by default with fewer than 1,000 reference rows).

S5–S7 move personas differently (issue #16): opposite mean shifts of Sustainable Steve and
Eco-Conscious Haley, which cancel in the pooled residual test, and one persona's spread growing.
S0 is drawn ``--null-factor`` times as often as the drift scenarios (fresh noise every window:
a new reference per repetition), because its rate is the one a target of ≤ 2 % needs tight.

"pooled 4" = the four pooled tests alone (the verdict before issue #16), from the same windows.

Gradual drift (G rows): a shift that grows linearly, by 0.5σ over a month (30 days; the
generator's ``--gradual``), then stays (the next month at full shift), judged in
weekly windows of the given size from the month's start on; 0.5σ is reached on day 30, i.e. in
window 5 (days 28–35). "by win 5/6" = share of runs whose first failed window is window 5 or
earlier / window 6 or earlier (the target: flagged within two windows of reaching 0.5σ);
"drift by 6" = the policy's ``drift`` (two failed windows in a row) by window 6.

    .venv/bin/python bench/drift_power.py [--reps 200] [--sizes 500,5000] [--reference 500]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from monitor.stats import Reference, label_window, run_tests
from personas.catalogue import Catalogue, load_vendor_catalogue
from personas.model import CentroidModel
from personas.synthetic import draw_window


def _opposite(features: int) -> np.ndarray:
    """Steve +1.0 (0.5σ), Haley −1.0 in the first ``features`` features; Pat unchanged."""
    moved = np.zeros((3, 10))
    moved[0, :features] = 1.0
    moved[1, :features] = -1.0
    return moved


SCENARIOS: dict[str, dict[str, Any]] = {
    "S0 no drift": {},
    "S1 std 2 → 3.1": {"std": 3.1},
    "S2 mean +1.0 (0.5 std) in x1, x2": {"shift": 1.0},
    "S3 new persona at 10 %": {"new_share": 0.10},
    "S4 mix 1/3 → 0.6/0.2/0.2": {"mix": (0.6, 0.2, 0.2)},
    "S5 Steve +0.5σ, Haley −0.5σ in x1, x2": {"persona_shift": _opposite(2)},
    "S6 Steve +0.5σ, Haley −0.5σ in x1": {"persona_shift": _opposite(1)},
    "S7 Steve's std 2 → 3.1 only": {"persona_scale": (1.55, 1.0, 1.0)},
}

#: Gradual drift: (per-window parameters at full strength = 0.5σ, reached on day 30).
GRADUAL: dict[str, dict[str, Any]] = {
    "G1 mean +0.5σ/month in x1, x2": {"shift": 1.0},
    "G2 Steve +0.5σ/month, Haley −0.5σ/month in x1, x2": {"persona_shift": _opposite(2)},
}
GRADUAL_WEEKS = 8
POOLED = ("distance_shift", "persona_mix", "residual_mean", "far_tail")


def ks_baseline(window: np.ndarray, reference: np.ndarray) -> bool:
    from scipy.stats import ks_2samp

    drifted = sum(
        ks_2samp(window[:, j], reference[:, j]).pvalue < 0.05 for j in range(window.shape[1])
    )
    return bool(drifted >= 0.5 * window.shape[1])


def _reference(
    rng: np.random.Generator, vendor: Catalogue, rows: int
) -> tuple[CentroidModel, Reference, np.ndarray]:
    """A fresh reference month and its champion (the reference's own cluster means, v1)."""
    ref_x = draw_window(rng, vendor.centroids, rows)
    start = CentroidModel.from_catalogue(vendor)
    fitted = np.array([ref_x[start.label(ref_x).index == i].mean(axis=0) for i in range(3)])
    champion = CentroidModel(fitted, vendor.ids, vendor.names, version=1)
    return champion, Reference.build(champion, ref_x), ref_x


def _fails(champion: CentroidModel, ref: Reference, x: np.ndarray, alpha: float) -> bool:
    return _verdicts(champion, ref, x, alpha)[0]


def _verdicts(
    champion: CentroidModel, ref: Reference, x: np.ndarray, alpha: float
) -> tuple[bool, bool]:
    """(the verdict fails, the four pooled tests alone fail: the verdict before issue #16)."""
    results = run_tests(ref, label_window(champion, x), alpha=alpha)
    pooled = any(r.failed for r in results if r.name in POOLED)
    return any(r.failed for r in results), pooled


def gradual(
    rng: np.random.Generator, vendor: Catalogue, size: int, reps: int, args: argparse.Namespace
) -> None:
    """First failed weekly window under a shift growing by 0.5σ per 30 days."""
    only = tuple(p.strip() for p in args.only.split(",") if p.strip())
    for name, params in GRADUAL.items():
        if only and not name.startswith(only):
            continue
        by5 = by6 = drift6 = 0
        first: list[int] = []
        for _ in range(reps):
            champion, ref, _ = _reference(rng, vendor, args.reference)
            fails: list[bool] = []
            for week in range(GRADUAL_WEEKS):
                days = np.sort(rng.uniform(7 * week, 7 * (week + 1), size))
                ramp = np.minimum(days / 30.0, 1.0)  # then held: the next month at full shift
                x = draw_window(rng, vendor.centroids, size, strength=ramp, **params)
                fails.append(_fails(champion, ref, x, args.alpha))
            hit = next((w + 1 for w, f in enumerate(fails) if f), GRADUAL_WEEKS + 1)
            first.append(hit)
            by5 += hit <= 5
            by6 += hit <= 6
            drift6 += any(fails[w] and fails[w + 1] for w in range(5))
        print(
            f"{name:52} {size:>6} | first failed window: median {np.median(first):.0f} | "
            f"by win 5 {by5 / reps:>6.1%}  by win 6 {by6 / reps:>6.1%}  "
            f"drift by 6 {drift6 / reps:>6.1%}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="repetitions (window pairs) per cell")
    parser.add_argument("--null-factor", type=int, default=5, help="S0 gets this many × --reps")
    parser.add_argument("--sizes", default="115,500,5000", help="events per window")
    parser.add_argument("--reference", type=int, default=500, help="reference rows")
    parser.add_argument("--alpha", type=float, default=0.0025)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--only", default="", help="comma-separated scenario prefixes (S5,G1)")
    parser.add_argument(
        "--events", type=int, default=None, help="alias of --sizes with one size (bench convention)"
    )
    args = parser.parse_args()
    sizes = [args.events] if args.events else [int(s) for s in args.sizes.split(",")]
    only = tuple(p.strip() for p in args.only.split(",") if p.strip())

    vendor = load_vendor_catalogue()
    rng = np.random.default_rng(args.seed)
    new_centroid = np.asarray(rng.uniform(-10.0, 10.0, size=vendor.centroids.shape[1]))
    print(f"reference rows {args.reference}, α = {args.alpha} per test, {args.reps} reps per cell")
    print(
        f"{'scenario':40} {'events':>6} | {'monitor 1 win':>13} {'within 2':>9} {'both':>6} | "
        f"{'pooled 4 1 win':>14} {'within 2':>9} | {'K-S ≥50% 1 win':>14} {'within 2':>9}"
    )
    started = time.perf_counter()
    windows_judged = 0
    for size in sizes:
        for name, params in SCENARIOS.items():
            if only and not name.startswith(only):
                continue
            reps = args.reps * (args.null_factor if not params else 1)
            one = two = both = base_one = base_two = pool_one = pool_two = 0
            for _ in range(reps):
                champion, ref, ref_x = _reference(rng, vendor, args.reference)
                fails, base, pooled = [], [], []
                for _ in range(2):
                    x = draw_window(
                        rng, vendor.centroids, size, new_centroid=new_centroid, **params
                    )
                    verdict, pooled_verdict = _verdicts(champion, ref, x, args.alpha)
                    fails.append(verdict)
                    pooled.append(pooled_verdict)
                    base.append(ks_baseline(x, ref_x))
                    windows_judged += 1
                one += fails[0]
                two += fails[0] or fails[1]
                both += fails[0] and fails[1]
                pool_one += pooled[0]
                pool_two += pooled[0] or pooled[1]
                base_one += base[0]
                base_two += base[0] or base[1]
            print(
                f"{name:40} {size:>6} | {one / reps:>13.1%} {two / reps:>9.1%} "
                f"{both / reps:>6.1%} | {pool_one / reps:>14.1%} {pool_two / reps:>9.1%} | "
                f"{base_one / reps:>14.1%} {base_two / reps:>9.1%}  ({reps} reps)",
                flush=True,
            )
    for size in sizes:
        if not only or any(p.startswith("G") for p in only):
            gradual(rng, vendor, size, args.reps, args)
    elapsed = time.perf_counter() - started
    print(f"{windows_judged} windows in {elapsed:.1f} s (gradual rows not counted)")
    print("S0 rows: false alarms (per window / either of two / both = a false drift status).")


if __name__ == "__main__":
    main()
