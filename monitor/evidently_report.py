"""Evidently reports for a window: the human-readable "what moved", not the verdict.

One ``Report([DataDriftPreset(...)], include_tests=True)`` (Evidently 0.7 API) over the raw features
and, by default, the persona frame: the residual of each feature to the assigned centroid
(``r_x1`` … ``r_x10``), the distance to it and the persona, and for each persona a per-persona test
flagged (``personas``) that persona's own columns, empty in the other personas' rows: the residuals
of the features its mean moved in (``Sustainable Steve r_x1`` …) and its distance
(``Sustainable Steve distance``). Pooled residual columns average opposite shifts of two personas
away, so without these the report of such a window would show nothing moving; only the moved
features, because every column costs Evidently time (a window where all three personas' spread
grew would otherwise get 30 more columns and take twice as long). The per-column results go into the
DriftReport as informational tests (``evidently:<column>``); Evidently's dataset-drift test
(``evidently:dataset_drift``, ≥ 50 % of columns drifted) counts in the verdict only when configured:
on raw features it is weak and badly calibrated (docs/facts.md "Drift detection power"). Evidently is imported here, lazily
(≈5 s), and only by the monitor. A report costs 0.5–2 s and ≈4 MB of HTML, so the service makes one
only for the windows the ``reports`` setting asks for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from monitor.stats import LabelledWindow, Reference

__all__ = ["EvidentlyColumn", "EvidentlyResult", "frame_table", "run_report"]


@dataclass(frozen=True)
class EvidentlyColumn:
    column: str
    method: str
    score: float
    threshold: float | None
    drifted: bool


@dataclass(frozen=True)
class EvidentlyResult:
    columns: list[EvidentlyColumn]
    drifted_share: float
    dataset_drift: bool
    snapshot: Any

    def save_html(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(path))
        return path


def frame_table(
    ref: Reference,
    features: np.ndarray,
    frame: LabelledWindow,
    *,
    residuals: bool,
    personas: Mapping[str, Sequence[str]] | None = None,
) -> Any:
    """A DataFrame of one batch: raw features (+ residuals, distance, persona name, and for each
    persona named, its distance and the residuals of the features given: NaN in other rows)."""
    import pandas as pd

    names = list(ref.model.feature_names)
    table = pd.DataFrame(features, columns=names)
    if residuals:
        for j, name in enumerate(names):
            table[f"r_{name}"] = frame.residual[:, j]
        table["distance"] = frame.distance
        table["persona"] = np.asarray(ref.model.persona_names, dtype=object)[frame.index]
        for persona, moved in (personas or {}).items():
            mine = frame.index == ref.model.persona_names.index(persona)
            for feature in moved:
                j = names.index(feature)
                table[f"{persona} r_{feature}"] = np.where(mine, frame.residual[:, j], np.nan)
            table[f"{persona} distance"] = np.where(mine, frame.distance, np.nan)
    return table


def _limit(table: Any, limit: int, seed: int) -> Any:
    """At most ``limit`` rows, chosen reproducibly (Evidently's time grows with rows)."""
    if len(table) <= limit:
        return table
    keep = np.sort(np.random.default_rng(seed).choice(len(table), size=limit, replace=False))
    return table.iloc[keep].reset_index(drop=True)


def run_report(
    ref: Reference,
    features: np.ndarray,
    frame: LabelledWindow,
    *,
    method: str = "ks",
    max_rows: int = 5_000,
    residuals: bool = True,
    personas: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    name: str | None = None,
    timestamp: datetime | None = None,
) -> EvidentlyResult:
    """Run Evidently's DataDriftPreset for one window against the reference.

    ``name`` and ``timestamp`` (the window id and its end) place the run in a workspace's history;
    ``personas`` (name → moved features) get their own columns.
    """
    from evidently import Report
    from evidently.presets import DataDriftPreset

    current = _limit(
        frame_table(ref, features, frame, residuals=residuals, personas=personas), max_rows, seed
    )
    reference = _limit(
        frame_table(ref, ref.features, ref.frame, residuals=residuals, personas=personas),
        max_rows,
        seed,
    )
    preset = DataDriftPreset(num_method=method or None)
    snapshot = Report([preset], include_tests=True).run(
        current,
        reference,
        timestamp=None if timestamp is None else timestamp.replace(tzinfo=None),
        metadata={"model_version": ref.version},
        name=name,
    )
    return _parse(snapshot)


def _status_failed(status: Any) -> bool:
    return str(getattr(status, "value", status)).upper() == "FAIL"


def _parse(snapshot: Any) -> EvidentlyResult:
    data = snapshot.dict()
    values = {m["id"]: m for m in data["metrics"]}
    columns: list[EvidentlyColumn] = []
    drifted_share = 0.0
    dataset_drift = False
    for test in data["tests"]:
        metric = values.get(test["metric_config"]["metric_id"], {})
        params = test["metric_config"]["params"]
        kind = params.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            drifted_share = float(metric.get("value", {}).get("share", 0.0))
            dataset_drift = _status_failed(test["status"])
        elif kind.endswith("ValueDrift"):
            threshold = params.get("threshold")
            columns.append(
                EvidentlyColumn(
                    column=str(params["column"]),
                    method=str(params.get("method", "")),
                    score=float(metric.get("value", float("nan"))),
                    threshold=None if threshold is None else float(threshold),
                    drifted=_status_failed(test["status"]),
                )
            )
    return EvidentlyResult(columns, drifted_share, dataset_drift, snapshot)
