"""producer.generator: months, timestamps, ids, determinism, the original five months."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest

from personas.catalogue import FEATURES, Catalogue
from personas.errors import ConfigError
from personas.synthetic import MeanShift, NewPersona
from producer.files import COLUMNS
from producer.generator import (
    MonthSpec,
    generate_month,
    month_bounds,
    original_months,
    uuid4_strings,
)


def test_columns_types_and_order(catalogue: Catalogue) -> None:
    df = generate_month(MonthSpec("2025-03", 500, 2.0, 1), catalogue)
    assert tuple(df.columns) == COLUMNS
    assert len(df) == 500
    assert str(df["submitted_at"].dtype) == "datetime64[ms, UTC]"
    assert df["submitted_at"].is_monotonic_increasing
    assert df[list(FEATURES)].dtypes.eq(np.float64).all()
    assert df["true_persona_id"].value_counts().sort_index().tolist() == [167, 167, 166]


def test_timestamps_spread_over_the_whole_month(catalogue: Catalogue) -> None:
    df = generate_month(MonthSpec("2025-03", 3100, 2.0, 1), catalogue)
    ts = df["submitted_at"]
    assert ts.min() >= pd.Timestamp("2025-03-01", tz="UTC")
    assert ts.max() < pd.Timestamp("2025-04-01", tz="UTC")
    per_day = ts.dt.day.value_counts()
    assert len(per_day) == 31  # every day has responses (100 expected per day)
    assert per_day.min() > 60 and per_day.max() < 140
    assert ts.dt.hour.nunique() == 24
    assert ts.is_unique or ts.duplicated().sum() < 5  # millisecond resolution


def test_month_bounds_in_a_time_zone() -> None:
    start, end = month_bounds("2025-03", "Europe/Berlin")
    assert str(start) == "2025-02-28T23:00:00.000"  # CET, UTC+1
    assert str(end) == "2025-03-31T22:00:00.000"  # CEST, UTC+2
    start, end = month_bounds("2025-12", "UTC")
    assert (str(start), str(end)) == ("2025-12-01T00:00:00.000", "2026-01-01T00:00:00.000")
    with pytest.raises(ConfigError, match="2025-03"):
        month_bounds("2025-13")
    with pytest.raises(ConfigError, match="time zone"):
        month_bounds("2025-03", "Mars/Olympus")


def test_time_zone_moves_the_rows(catalogue: Catalogue) -> None:
    df = generate_month(MonthSpec("2025-03", 2000, 2.0, 1, tz="Asia/Tokyo"), catalogue)
    assert df["submitted_at"].min() >= pd.Timestamp("2025-02-28T15:00Z")
    assert df["submitted_at"].max() < pd.Timestamp("2025-03-31T15:00Z")


def test_ids_are_unique_uuid4(catalogue: Catalogue) -> None:
    df = generate_month(MonthSpec("2025-01", 5000, 2.0, 3), catalogue)
    assert df["event_id"].is_unique and df["respondent_id"].is_unique
    parsed = [uuid.UUID(v) for v in df["event_id"][:200]]
    assert all(u.version == 4 and str(u) == v for u, v in zip(parsed, df["event_id"], strict=False))
    assert df["respondent_id"].str.fullmatch(r"resp-[0-9a-f]{16}").all()


def test_uuid4_strings_layout() -> None:
    ids = uuid4_strings(np.random.default_rng(0), 3)
    for text in ids:
        u = uuid.UUID(str(text))
        assert (u.version, u.variant, str(u)) == (4, uuid.RFC_4122, text)


def test_same_spec_same_data_and_other_month_other_data(catalogue: Catalogue) -> None:
    a = generate_month(MonthSpec("2025-01", 300, 2.0, 42), catalogue)
    b = generate_month(MonthSpec("2025-01", 300, 2.0, 42), catalogue)
    c = generate_month(MonthSpec("2025-02", 300, 2.0, 42), catalogue)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a[list(FEATURES)].to_numpy(), c[list(FEATURES)].to_numpy())
    assert set(a["event_id"]).isdisjoint(c["event_id"])


def test_original_months(catalogue: Catalogue) -> None:
    months = original_months(catalogue)
    assert [(m.month, m.n, m.std, m.seed) for m in months] == [
        ("2025-01", 500, 2.0, 42),
        ("2025-02", 500, 2.0, 42),
        ("2025-03", 500, 3.1, 5977),
        ("2025-04", 500, 2.0, 42),
        ("2025-05", 500, 2.0, 42),
    ]
    jan, feb = (generate_month(m, catalogue) for m in months[:2])
    assert not np.array_equal(jan[list(FEATURES)].to_numpy(), feb[list(FEATURES)].to_numpy())


def test_scenarios_reach_the_month(catalogue: Catalogue) -> None:
    spec = MonthSpec("2025-04", 1000, 2.0, 1, scenarios=(NewPersona(0.1), MeanShift((0,), 1.0)))
    df = generate_month(spec, catalogue)
    assert (df["true_persona_id"] == 3).sum() == 100
    plain = generate_month(MonthSpec("2025-04", 1000, 2.0, 1), catalogue)
    kept = df["true_persona_id"] != 3
    diff = (df.loc[kept, "x1"] - plain.loc[kept, "x1"]).to_numpy()
    assert np.allclose(diff, 1.0)


def test_bad_spec_is_a_config_error(catalogue: Catalogue) -> None:
    with pytest.raises(ConfigError, match="std"):
        generate_month(MonthSpec("2025-01", 10, -1.0, 1), catalogue)
    with pytest.raises(ConfigError, match="n must be"):
        generate_month(MonthSpec("2025-01", -1, 1.0, 1), catalogue)
