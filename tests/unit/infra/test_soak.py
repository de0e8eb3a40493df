"""The soak's own arithmetic: its data, the windows it expects, how episodes are counted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd

from infra.soak import ORIGIN, WEEK, SoakOptions, drift_episodes, soak_data


def test_episodes_are_runs_of_warning_or_drift_windows() -> None:
    assert drift_episodes([]) == 0
    assert drift_episodes(["ok", "ok"]) == 0
    assert drift_episodes(["ok", "warning", "drift", "drift", "ok", "drift", "ok"]) == 2
    assert drift_episodes(["insufficient_data", "drift", "insufficient_data", "drift"]) == 2


def test_data_has_the_rate_times_the_minutes_and_a_sentinel_that_closes_the_last_week(
    tmp_path: Path,
) -> None:
    reference, path, events, windows = soak_data(SoakOptions(minutes=1, rate=40, seed=3), tmp_path)
    frame = pd.read_parquet(path)
    assert events == len(frame) == 1 * 60 * 40 + 1
    assert frame["event_id"].is_unique
    times = frame["submitted_at"].sort_values()
    sentinel, last = times.iloc[-1], times.iloc[-2]
    assert sentinel - last >= timedelta(days=14)  # past the last week's end: it closes
    weeks = {ORIGIN + ((t - ORIGIN) // WEEK) * WEEK for t in times.iloc[:-1].dt.to_pydatetime()}
    assert windows == len(weeks)
    assert len(pd.read_parquet(reference)) == 1500
