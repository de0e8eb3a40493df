"""A month of synthetic survey responses: the original ``create_data`` with its flaws fixed.

``personas.synthetic`` makes the feature rows (centroid + isotropic noise, drift scenarios); this
module adds what makes them events: timestamps spread over the whole month (uniform, in a chosen
time zone, stored in UTC, millisecond resolution so the Kafka timestamp equals ``submitted_at``),
a unique ``event_id`` (UUID v4 layout) and a ``respondent_id`` per row, rows in event-time order.

Determinism: everything is drawn from one generator seeded with ``(seed, year, month)``. The same
arguments give byte-identical files (and identical event ids, so re-publishing them is harmless
downstream), while the same seed in another month gives fresh data: the original project's
"Feb = Apr = May = exact copy of Jan" flaw cannot happen by accident.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from personas.catalogue import FEATURES, Catalogue
from personas.errors import ConfigError
from personas.synthetic import Batch, Scenario, apply_scenarios, generate

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MonthSpec",
    "generate_month",
    "month_bounds",
    "month_rng",
    "original_months",
    "uuid4_strings",
]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8).astype(np.uint32)


@dataclass(frozen=True)
class MonthSpec:
    """Everything that determines a generated month (and nothing else does)."""

    month: str
    n: int
    std: float
    seed: int
    tz: str = "UTC"
    weights: tuple[float, ...] | None = None
    scenarios: tuple[Scenario, ...] = field(default_factory=tuple)


def _parse_month(month: str) -> tuple[int, int]:
    match = _MONTH.match(month)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ConfigError(f"month must look like 2025-03, got {month!r}")
    return int(match.group(1)), int(match.group(2))


def month_bounds(month: str, tz: str = "UTC") -> tuple[np.datetime64, np.datetime64]:
    """[start, end) of a calendar month in time zone ``tz``, as UTC ``datetime64[ms]``."""
    year, mon = _parse_month(month)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {tz!r} (use an IANA name like Europe/Berlin)"
        ) from None
    start = datetime(year, mon, 1, tzinfo=zone)
    end = datetime(year + (mon == 12), mon % 12 + 1, 1, tzinfo=zone)
    return _ms(start), _ms(end)


def _ms(moment: datetime) -> np.datetime64:
    return np.datetime64(round(moment.timestamp() * 1000), "ms")


def month_rng(seed: int, month: str) -> np.random.Generator:
    """The generator of one month: seeded by (seed, year, month), see the module docstring."""
    year, mon = _parse_month(month)
    return np.random.default_rng(np.random.SeedSequence([seed, year, mon]))


def uuid4_strings(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` random UUIDs (version 4 layout) as text, drawn from ``rng`` (vectorised)."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return _hex_join(raw, (4, 6, 8, 10))


def _hex_join(raw: np.ndarray, dashes_after: Sequence[int] = ()) -> np.ndarray:
    """Rows of bytes as lower-case hex text, with ``-`` after the given byte positions."""
    n, m = raw.shape
    codes = np.empty((n, 2 * m), dtype=np.uint32)  # one UCS-4 code point per character
    codes[:, 0::2] = _HEX[raw >> 4]
    codes[:, 1::2] = _HEX[raw & 0x0F]
    if dashes_after:
        parts = np.split(codes, [2 * c for c in dashes_after], axis=1)
        dash = np.full((n, 1), ord("-"), dtype=np.uint32)
        codes = np.concatenate([x for part in parts for x in (part, dash)][:-1], axis=1)
    return np.ascontiguousarray(codes).view(f"<U{codes.shape[1]}")[:, 0]


def generate_month(spec: MonthSpec, catalogue: Catalogue) -> pd.DataFrame:
    """One month of events, in ``submitted_at`` order, with the columns of the data-file contract.

    ``true_persona_id`` is the catalogue persona id; a persona added by a scenario gets the next id
    after the catalogue's largest.
    """
    import pandas as pd

    if spec.n < 0:
        raise ConfigError(f"n must be >= 0, got {spec.n}")
    if not (np.isfinite(spec.std) and spec.std >= 0):
        raise ConfigError(f"std must be finite and >= 0, got {spec.std}")
    rng = month_rng(spec.seed, spec.month)
    start, end = month_bounds(spec.month, spec.tz)
    span = int((end - start) / np.timedelta64(1, "ms"))
    offsets = np.sort(rng.integers(0, span, size=spec.n))
    t = offsets / span
    try:
        X, idx = generate(catalogue.centroids, spec.n, spec.std, rng, spec.weights)
        batch = Batch(X=X, persona=idx, centroids=catalogue.centroids, t=t)
        batch = apply_scenarios(batch, spec.scenarios, rng)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    ids = np.asarray(catalogue.ids, dtype=np.int64)
    extra = batch.centroids.shape[0] - ids.size
    if extra:
        ids = np.concatenate([ids, ids.max() + 1 + np.arange(extra)])
    event_id = uuid4_strings(rng, spec.n)
    respondent_id = np.char.add("resp-", _hex_join(rng.integers(0, 256, (spec.n, 8), np.uint8)))
    submitted = (start + offsets.astype("timedelta64[ms]")).astype("datetime64[ms]")
    frame: dict[str, object] = {
        "event_id": event_id.astype(object),
        "respondent_id": respondent_id.astype(object),
        "submitted_at": pd.DatetimeIndex(submitted).tz_localize("UTC"),
    }
    for j, name in enumerate(FEATURES):
        frame[name] = batch.X[:, j]
    frame["true_persona_id"] = ids[batch.persona]
    return pd.DataFrame(frame)


def original_months(catalogue: Catalogue) -> list[MonthSpec]:
    """The original project's five months (Jan reference, Mar drifted), from the vendor file.

    The listed seeds repeat (42 for four months); seeding by (seed, month) makes them differ.
    """
    return [
        MonthSpec(month=str(m["month"]), n=int(m["n"]), std=float(m["std"]), seed=int(m["seed"]))
        for m in catalogue.original_months
    ]
