"""Detection and false-alarm rates of the monitor's verdict, by seeded simulation.

Reference: a January-like month (vendor centroids, persona mix 1/3 each, isotropic std 2), the
champion being the reference's own cluster means (as a retrain would fit them). Each repetition draws
two consecutive windows of the scenario and records whether the verdict (the four calibrated tests
of monitor/stats.py, OR, α = 0.0025 each) fails the first window, whether it fails either of the
two ("within two windows"), and whether it fails both (the default policy's ``drift`` status, which
sends the retrain command, by the second window; for S0 that is a false retrain). Baseline, measured in the same run on the same windows: the seed's
check, per-column two-sample K-S on raw x1..x10 with drift if ≥ 50 % of the columns drift at
p < 0.05 (what Evidently's DataDriftPreset does by default with fewer than 1,000 reference rows).

    .venv/bin/python bench/drift_power.py [--reps 200] [--sizes 500,5000] [--reference 500]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from monitor.stats import Reference, label_window, run_tests
from personas.catalogue import load_vendor_catalogue
from personas.model import CentroidModel
from personas.synthetic import draw_window

SCENARIOS: dict[str, dict[str, Any]] = {
    "S0 no drift": {},
    "S1 std 2 → 3.1": {"std": 3.1},
    "S2 mean +1.0 (0.5 std) in x1, x2": {"shift": 1.0},
    "S3 new persona at 10 %": {"new_share": 0.10},
    "S4 mix 1/3 → 0.6/0.2/0.2": {"mix": (0.6, 0.2, 0.2)},
}


def ks_baseline(window: np.ndarray, reference: np.ndarray) -> bool:
    from scipy.stats import ks_2samp

    drifted = sum(
        ks_2samp(window[:, j], reference[:, j]).pvalue < 0.05 for j in range(window.shape[1])
    )
    return bool(drifted >= 0.5 * window.shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200, help="repetitions (window pairs) per cell")
    parser.add_argument("--sizes", default="115,500,5000", help="events per window")
    parser.add_argument("--reference", type=int, default=500, help="reference rows")
    parser.add_argument("--alpha", type=float, default=0.0025)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument(
        "--events", type=int, default=None, help="alias of --sizes with one size (bench convention)"
    )
    args = parser.parse_args()
    sizes = [args.events] if args.events else [int(s) for s in args.sizes.split(",")]

    vendor = load_vendor_catalogue()
    rng = np.random.default_rng(args.seed)
    new_centroid = np.asarray(rng.uniform(-10.0, 10.0, size=vendor.centroids.shape[1]))
    print(f"reference rows {args.reference}, α = {args.alpha} per test, {args.reps} reps per cell")
    print(
        f"{'scenario':36} {'events':>6} | {'monitor 1 win':>13} {'within 2':>9} {'both':>6} | "
        f"{'K-S ≥50% 1 win':>14} {'within 2':>9}"
    )
    started = time.perf_counter()
    windows_judged = 0
    for size in sizes:
        for name, params in SCENARIOS.items():
            one = two = both = base_one = base_two = 0
            for _ in range(args.reps):
                ref_x = draw_window(rng, vendor.centroids, args.reference)
                start = CentroidModel.from_catalogue(vendor)
                fitted = np.array(
                    [ref_x[start.label(ref_x).index == i].mean(axis=0) for i in range(3)]
                )
                champion = CentroidModel(fitted, vendor.ids, vendor.names, version=1)
                ref = Reference.build(champion, ref_x)
                fails, base = [], []
                for _ in range(2):
                    x = draw_window(
                        rng, vendor.centroids, size, new_centroid=new_centroid, **params
                    )
                    results = run_tests(ref, label_window(champion, x), alpha=args.alpha)
                    fails.append(any(r.failed for r in results))
                    base.append(ks_baseline(x, ref_x))
                    windows_judged += 1
                one += fails[0]
                two += fails[0] or fails[1]
                both += fails[0] and fails[1]
                base_one += base[0]
                base_two += base[0] or base[1]
            n = args.reps
            print(
                f"{name:36} {size:>6} | {one / n:>13.1%} {two / n:>9.1%} {both / n:>6.1%} | "
                f"{base_one / n:>14.1%} {base_two / n:>9.1%}",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    print(f"{windows_judged} windows in {elapsed:.1f} s")
    print("S0 rows: false alarms (per window / either of two / both = a false drift status).")


if __name__ == "__main__":
    main()
