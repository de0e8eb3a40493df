"""Monitor settings (env prefix ``PERSONA_MONITOR_``); connections come from ``personas.Settings``.

Defaults follow docs/facts.md "Drift detection power" and issue #16: six tests in the persona
frame at α = 0.0025 each (≈1.5 % false alarms per window combined), two consecutive failed windows
make ``drift``. Build ``MonitorSettings()`` in the CLI or ``main()``, never at import.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from personas.errors import ConfigError

__all__ = ["TEST_NAMES", "MonitorSettings", "parse_duration"]

#: The calibrated tests of monitor/stats.py, by name.
TEST_NAMES: tuple[str, ...] = (
    "distance_shift",
    "persona_mix",
    "residual_mean",
    "far_tail",
    "persona_shift",
    "persona_spread",
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str) -> timedelta:
    """``"7d"``, ``"1h"``, ``"90s"``, ``"2w"`` → timedelta; ConfigError on anything else."""
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"{text!r} is not a duration (use e.g. 30s, 15m, 1h, 1d, 7d, 2w)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def _check_duration(value: str) -> None:
    try:
        parse_duration(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


class MonitorSettings(BaseSettings):
    """Everything the drift monitor can be told. Env: ``PERSONA_MONITOR_<FIELD>``."""

    model_config = SettingsConfigDict(
        env_prefix="PERSONA_MONITOR_", env_file=".env", extra="ignore", frozen=True
    )

    # Windows
    window: str = Field(
        "7d",
        description=(
            "Tumbling window size: a duration in event time (30m, 1h, 1d, 7d) or a number of "
            "events (e.g. 500) for count windows."
        ),
    )
    window_origin: datetime = Field(
        datetime(2024, 1, 1, tzinfo=UTC),
        description="Time windows are aligned to this instant (default a Monday, so 7d = ISO weeks).",
    )
    allowed_lateness: str = Field(
        "1h",
        description=(
            "How far behind the newest event an event may arrive and still count; a window closes "
            "when the watermark (min over partitions of the newest event time, minus this) passes "
            "its end."
        ),
    )
    idle_timeout_s: float = Field(
        10.0,
        ge=0,
        description=(
            "Seconds a partition must stay at its end with nothing new before it stops holding "
            "the watermark back (0: at once). A partition the monitor has caught up on while the "
            "stream app is still writing it would otherwise let windows close before its labels "
            "exist; the last window of a finished replay closes this much later."
        ),
    )
    min_events: int = Field(
        50, ge=12, description="Windows with fewer labelled events report insufficient_data."
    )
    max_window_events: int = Field(
        20_000,
        ge=100,
        description=(
            "Events kept per window; bigger windows keep a deterministic sample (the events with "
            "the smallest hash of event_id) and report sampled=true."
        ),
    )

    # Verdict
    alpha: float = Field(
        0.0025, gt=0, lt=0.5, description="Significance level of each calibrated test."
    )
    tests: Annotated[tuple[str, ...], NoDecode] = Field(
        TEST_NAMES,
        description="Calibrated tests whose failure fails a window (OR); comma-separated or JSON.",
    )
    evidently_in_verdict: bool = Field(
        False,
        description=(
            "Also fail a window when Evidently's dataset-drift test fails (poorly calibrated on "
            "raw features; off by default, its results are informational)."
        ),
    )
    consecutive_windows: int = Field(
        2, ge=1, description="Consecutive failed windows that make status drift (fewer: warning)."
    )
    cooldown: str = Field(
        "14d",
        description=(
            "Event time after a retrain command during which no new command is sent (one episode "
            "triggers one retrain; an episode also never sends two)."
        ),
    )
    requested_by: str = Field("monitor", description="requested_by of RetrainCommand messages.")

    # Evidently reports
    reports: Literal["never", "non_ok", "all"] = Field(
        "non_ok", description="Which windows get an Evidently HTML report (≈4 MB each)."
    )
    reports_dir: Path = Field(
        Path("reports/monitor"), description="Folder of the HTML reports (not committed)."
    )
    evidently_method: str = Field(
        "ks", description="Evidently per-column method (ks gives p-values; '' = its default)."
    )
    evidently_max_rows: int = Field(
        5_000, ge=100, description="Rows of window and reference given to Evidently at most."
    )
    evidently_workspace: Path | None = Field(
        None,
        description=(
            "Record every closed window (and its Evidently report, if it has one) in this local "
            "Evidently workspace, with a drift-history dashboard (`persona ui` shows it); "
            "empty = off."
        ),
    )
    ui_host: str = Field(
        "127.0.0.1", description="Interface `persona ui` (evidently ui) serves on."
    )
    ui_port: int = Field(8000, ge=1, le=65535, description="Port of `persona ui` (evidently ui).")
    evidently_residuals: bool = Field(
        True, description="Add residual (x − assigned centroid) and distance columns to the report."
    )

    # Service
    group_id: str = Field(
        "persona-monitor",
        description=(
            "Kafka consumer group. Several instances: give each its own group (they all read "
            "every partition and dedupe on drift_reports' primary key)."
        ),
    )
    instance_id: str = Field(
        "monitor-1",
        description=(
            "Name of this instance in logs and rows, and its static member id in the group "
            "(a restart takes its partitions back at once instead of after the session timeout)."
        ),
    )
    consume_responses: bool = Field(
        True, description="Count survey-responses per window (labelled share in each report)."
    )
    commit_interval_s: float = Field(2.0, gt=0, description="Seconds between offset commits.")
    metrics_host: str = Field(
        "127.0.0.1", description="Interface of the monitor's Prometheus /metrics endpoint."
    )
    metrics_port: int = Field(
        6070,
        ge=0,
        le=65535,
        description="Port of the monitor's /metrics (distinct per instance; 0 turns it off).",
    )
    future_margin_s: float = Field(
        3600.0,
        gt=0,
        description="Events dated more than this after the monitor's clock are counted and "
        "ignored: they would close every window up to their date at once.",
    )
    history_windows: int = Field(
        50, ge=0, description="Stored windows replayed into the policy at start-up."
    )

    @field_validator("tests", mode="before")
    @classmethod
    def _split_tests(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return tuple(json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    @field_validator("evidently_workspace", mode="before")
    @classmethod
    def _empty_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("tests")
    @classmethod
    def _known_tests(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(value) - set(TEST_NAMES)
        if unknown:
            raise ValueError(f"unknown tests {sorted(unknown)}; choose from {list(TEST_NAMES)}")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        value = value.strip()
        if value.isdigit():
            if int(value) < 12:
                raise ValueError("a count window needs at least 12 events")
        else:
            _check_duration(value)
        return value

    @field_validator("allowed_lateness", "cooldown")
    @classmethod
    def _duration(cls, value: str) -> str:
        _check_duration(value)
        return value

    @field_validator("window_origin")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @property
    def lateness(self) -> timedelta:
        return parse_duration(self.allowed_lateness)

    @property
    def cooldown_delta(self) -> timedelta:
        return parse_duration(self.cooldown)
