"""The best-k experiment: how many personas does a data slice support?

For each k in a range, KMeans (k-means++, a few restarts, seeded) on one data slice; one nested
MLflow run per k with silhouette, Calinski–Harabasz, Davies–Bouldin and inertia; the parent run
holds the elbow/silhouette plot, the table and the recommendation with its reason.

Recommendation: the inertia elbow, made objective — the smallest k after which one more cluster
cuts the within-cluster sum of squares by less than 10 % (see ``elbow``). Silhouette alone is not
used: with the vendor personas two of the three groups are much closer to each other than to the
third, and silhouette (and Davies–Bouldin) then prefer k=2, merging two real personas. The reason
names whether silhouette, Calinski–Harabasz (max) and Davies–Bouldin (min) agree. The original ranked runs by silhouette·1000/inertia across data sets; inertia
is a sum over rows in squared feature units, so that ratio changes with the sample size and scale of
each data set rather than with cluster quality (docs/trainer.md).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from personas.errors import ConfigError, InputFileError
from personas.settings import Settings
from trainer.data import features_of
from trainer.fitting import fit_kmeans
from trainer.gate import silhouette
from trainer.settings import TrainerSettings

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ExploreResult", "KScore", "elbow", "explore", "recommend", "score_k_range"]


@dataclass(frozen=True)
class KScore:
    k: int
    silhouette: float
    calinski_harabasz: float
    davies_bouldin: float
    inertia: float


@dataclass(frozen=True)
class ExploreResult:
    scores: list[KScore]
    recommended_k: int
    reason: str
    run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def score_k_range(
    x: np.ndarray, k_min: int, k_max: int, *, seed: int, sample_rows: int
) -> list[KScore]:
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    if k_min < 2 or k_max < k_min:
        raise ConfigError(f"k range {k_min}..{k_max} is invalid (need 2 <= k-min <= k-max)")
    if len(x) <= k_max:
        raise InputFileError(f"{len(x)} rows cannot support k up to {k_max}")
    sample = np.random.default_rng(seed).permutation(len(x))[:sample_rows]
    scores = []
    for k in range(k_min, k_max + 1):
        fit = fit_kmeans(x, k, seed=seed)
        scores.append(
            KScore(
                k=k,
                silhouette=silhouette(x, fit.labels, sample),
                calinski_harabasz=float(calinski_harabasz_score(x, fit.labels)),
                davies_bouldin=float(davies_bouldin_score(x, fit.labels)),
                inertia=fit.inertia,
            )
        )
    return scores


def elbow(ks: list[int], inertia: list[float], min_gain: float = 0.10) -> int | None:
    """Smallest k after which one more cluster cuts inertia by less than ``min_gain``.

    Why 10 %: splitting one isotropic normal group in d dimensions removes only about 2/(π·d) of
    its inertia (6.4 % for d = 10), so a smaller gain means k+1 only cuts a real group in two.
    None when every step in the range still gains more (the range is too narrow).
    """
    for i in range(len(ks) - 1):
        if inertia[i] <= 0 or (inertia[i] - inertia[i + 1]) / inertia[i] < min_gain:
            return int(ks[i])
    return None


def recommend(scores: list[KScore], min_gain: float = 0.10) -> tuple[int, str]:
    """The inertia elbow, with what silhouette, Calinski-Harabasz and Davies-Bouldin say."""
    ks = [s.k for s in scores]
    by_k = {s.k: s for s in scores}
    found = elbow(ks, [s.inertia for s in scores], min_gain)
    chosen = found if found is not None else ks[-1]
    if found is None:
        reason = (
            f"every extra cluster up to k={chosen} still cuts inertia by {min_gain:.0%} or more"
        )
        reason += " (widen the range)"
    else:
        nxt = by_k.get(chosen + 1)
        gain = (by_k[chosen].inertia - nxt.inertia) / by_k[chosen].inertia if nxt else 0.0
        reason = f"k={chosen}: one more cluster cuts inertia by only {gain:.1%} (< {min_gain:.0%})"
        if chosen > ks[0]:
            prev = by_k[chosen - 1]
            reason += f", the step from k={chosen - 1} cut it by "
            reason += f"{(prev.inertia - by_k[chosen].inertia) / prev.inertia:.1%}"
    others = (
        ("silhouette", max(scores, key=lambda s: s.silhouette).k),
        ("Calinski-Harabasz", max(scores, key=lambda s: s.calinski_harabasz).k),
        ("Davies-Bouldin", min(scores, key=lambda s: s.davies_bouldin).k),
    )
    agree = [name for name, k in others if k == chosen]
    differ = [f"{name} prefers k={k}" for name, k in others if k != chosen]
    if agree:
        reason += "; " + ", ".join(agree) + " agree"
    if differ:
        reason += "; " + ", ".join(differ)
    return chosen, reason


def _plot(scores: list[KScore], chosen: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [s.k for s in scores]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(ks, [s.inertia for s in scores], marker="o")
    left.set(title="Elbow: inertia", xlabel="k", ylabel="inertia (within-cluster SS)")
    right.plot(ks, [s.silhouette for s in scores], marker="o", color="tab:green")
    right.set(title="Silhouette", xlabel="k", ylabel="mean silhouette")
    for ax in (left, right):
        ax.axvline(chosen, color="tab:red", linestyle="--", label=f"recommended k={chosen}")
        ax.set_xticks(ks)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def explore(
    settings: Settings,
    frame: pd.DataFrame,
    *,
    k_min: int = 2,
    k_max: int = 8,
    data_label: str = "dataframe",
    trainer_settings: TrainerSettings | None = None,
    log_to_mlflow: bool = True,
) -> ExploreResult:
    """Score k_min..k_max on ``frame`` (x1..x10) and log the experiment to MLflow."""
    ts = trainer_settings or TrainerSettings()
    x = features_of(frame)
    scores = score_k_range(x, k_min, k_max, seed=ts.seed, sample_rows=ts.silhouette_rows)
    chosen, reason = recommend(scores)
    if not log_to_mlflow:
        return ExploreResult(scores, chosen, reason)
    run_id = _log(settings, ts, scores, chosen, reason, data_label, len(x))
    return ExploreResult(scores, chosen, reason, run_id=run_id)


def _log(
    settings: Settings,
    ts: TrainerSettings,
    scores: list[KScore],
    chosen: int,
    reason: str,
    data_label: str,
    n: int,
) -> str:
    import time

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException

    from personas.registry import client
    from trainer.register import experiment_id, unavailable

    mlflow_client = client(settings)
    exp = experiment_id(settings, ts.explore_experiment)
    now = int(time.time() * 1000)
    try:
        parent = mlflow_client.create_run(exp, run_name=f"best-k {data_label}"[:250])
        pid = parent.info.run_id
        for s in scores:
            child = mlflow_client.create_run(
                exp, run_name=f"k={s.k}", tags={"mlflow.parentRunId": pid}
            )
            metrics = {
                "silhouette": s.silhouette,
                "calinski_harabasz": s.calinski_harabasz,
                "davies_bouldin": s.davies_bouldin,
                "inertia": s.inertia,
            }
            mlflow_client.log_batch(
                child.info.run_id,
                metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                params=[Param("k", str(s.k)), Param("n_samples", str(n))],
            )
            mlflow_client.set_terminated(child.info.run_id)
        mlflow_client.log_batch(
            pid,
            metrics=[Metric("recommended_k", float(chosen), now, 0)],
            params=[
                Param("data", data_label[:6000]),
                Param("n_samples", str(n)),
                Param("k_range", f"{scores[0].k}..{scores[-1].k}"),
                Param("seed", str(ts.seed)),
                Param("silhouette_rows", str(ts.silhouette_rows)),
            ],
            tags=[RunTag("recommendation", reason[:5000])],
        )
        with tempfile.TemporaryDirectory() as tmp:
            plot = Path(tmp) / "best_k.png"
            _plot(scores, chosen, plot, f"Best k on {data_label} ({n} rows)")
            table = Path(tmp) / "best_k.json"
            table.write_text(
                json.dumps(
                    {
                        "recommended_k": chosen,
                        "reason": reason,
                        "scores": [s.__dict__ for s in scores],
                    },
                    indent=2,
                )
            )
            mlflow_client.log_artifact(pid, str(plot))
            mlflow_client.log_artifact(pid, str(table))
        mlflow_client.set_terminated(pid)
    except (MlflowException, OSError) as exc:
        raise unavailable(settings, exc) from None
    return str(pid)
