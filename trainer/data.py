"""Training data in: an event-time range of labelled responses from PostgreSQL, a user's file,
or a synthetic sample around the vendor centroids.

Everything comes out as a pandas DataFrame with the float columns x1..x10 (plus whatever else the
source had), checked to be finite, so the fitting code never sees a malformed matrix.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from personas.catalogue import FEATURES, Catalogue
from personas.errors import InputFileError
from personas.model import CentroidModel
from personas.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "check_features",
    "features_of",
    "load_range",
    "read_table",
    "reference_frame",
    "synthetic_sample",
]


def check_features(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Keep the rows usable for fitting; raise InputFileError if x1..x10 are missing or not numeric."""
    import pandas as pd

    missing = [name for name in FEATURES if name not in frame.columns]
    if missing:
        raise InputFileError(f"{source}: missing feature column(s) {missing}")
    try:
        values = frame[list(FEATURES)].astype("float64")
    except (TypeError, ValueError) as exc:
        raise InputFileError(f"{source}: feature columns are not numeric: {exc}") from None
    finite = np.isfinite(values.to_numpy()).all(axis=1)
    out = frame.loc[finite].copy()
    out[list(FEATURES)] = values.loc[finite]
    return pd.DataFrame(out).reset_index(drop=True)


def features_of(frame: pd.DataFrame) -> np.ndarray:
    return np.ascontiguousarray(frame[list(FEATURES)].to_numpy(dtype=np.float64))


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file with at least the columns x1..x10 (e.g. a month the producer wrote)."""
    import pandas as pd

    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except Exception as exc:
        raise InputFileError(f"{path}: cannot read as a table: {exc}") from None
    frame = check_features(frame, str(path))
    if frame.empty:
        raise InputFileError(f"{path}: no rows with finite x1..x10")
    return frame


def load_range(
    settings: Settings, start: datetime, end: datetime, *, max_rows: int, seed: int
) -> pd.DataFrame:
    """Labelled responses with ``start <= submitted_at < end`` (event time), at most ``max_rows``.

    When the range holds more rows a seeded uniform sample is taken in SQL order of event id, so
    the same command always trains on the same rows.
    """
    import pandas as pd

    from personas import db

    columns = ", ".join(FEATURES)
    with db.connect(settings) as conn:
        rows = conn.execute(
            f"SELECT event_id::text, submitted_at, persona_id, {columns} FROM persona_labels"
            " WHERE submitted_at >= %s AND submitted_at < %s ORDER BY event_id",
            (start, end),
        ).fetchall()
    frame = pd.DataFrame(rows, columns=["event_id", "submitted_at", "persona_id", *FEATURES])
    if len(frame) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(frame), max_rows, replace=False))
        frame = frame.iloc[keep].reset_index(drop=True)
    return check_features(frame, "persona_labels")


def synthetic_sample(catalogue: Catalogue, n: int, std: float, seed: int) -> pd.DataFrame:
    """Isotropic normal noise of ``std`` around each vendor centroid, equal shares, seeded.

    This is how the vendor's (and the original project's) data were made (make_blobs, std 2.0), so
    it is the best stand-in for the data the vendor centroids describe when no real month exists.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    centroids = catalogue.centroids
    k = centroids.shape[0]
    which = np.arange(n) % k
    x = centroids[which] + rng.normal(0.0, std, size=(n, centroids.shape[1]))
    frame = pd.DataFrame(x, columns=list(FEATURES))
    frame["true_persona_id"] = np.asarray(catalogue.ids)[which]
    return frame


def reference_frame(
    frame: pd.DataFrame, model: CentroidModel, *, max_rows: int, seed: int
) -> pd.DataFrame:
    """The sample stored beside a version: x1..x10, the persona it gets and its distance.

    At most ``max_rows`` rows (seeded sample) keep the monitor's per-window cost bounded;
    ``submitted_at`` and ``true_persona_id`` are kept when the source had them.
    """
    import pandas as pd

    if len(frame) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(frame), max_rows, replace=False))
        frame = frame.iloc[keep].reset_index(drop=True)
    labels = model.label(features_of(frame))
    out = pd.DataFrame(features_of(frame), columns=list(FEATURES))
    out["persona_id"] = labels.persona_id.astype("int64")
    out["distance"] = labels.distance
    for extra in ("submitted_at", "true_persona_id"):
        if extra in frame.columns:
            out[extra] = frame[extra].to_numpy()
    return out
