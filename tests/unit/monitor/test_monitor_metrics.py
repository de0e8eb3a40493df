"""The monitor's metrics: counts read from MonitorStats at scrape time, window outcomes and
watermark lag recorded by the judge thread and the loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.counters import MonitorStats
from monitor.metrics import MonitorMetrics


def _samples(metrics: MonitorMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_counts_are_the_stats_read_at_scrape_time() -> None:
    stats = MonitorStats()
    metrics = MonitorMetrics(stats)
    stats.labels, stats.late, stats.retrains, stats.invalid = 120, 3, 1, 2
    samples = _samples(metrics)
    assert samples[("persona_monitor_labels_consumed_total", ())] == 120
    assert samples[("persona_monitor_late_events_total", ())] == 3
    assert samples[("persona_monitor_retrain_commands_total", ())] == 1
    assert samples[("persona_monitor_invalid_labels_total", ())] == 2
    stats.labels += 5  # live: the next scrape sees it
    assert _samples(metrics)[("persona_monitor_labels_consumed_total", ())] == 125


def test_a_decided_window_is_counted_and_becomes_the_newest_status() -> None:
    metrics = MonitorMetrics(MonitorStats(), clock=lambda: 1_000.0)
    end = datetime(2025, 3, 8, tzinfo=UTC)
    assert _samples(metrics)[("persona_monitor_windows_total", (("status", "drift"),))] == 0
    metrics.window_decided("warning", end, 0.004)
    metrics.window_decided("drift", end + timedelta(days=7), 0.006)
    samples = _samples(metrics)
    assert samples[("persona_monitor_windows_total", (("status", "warning"),))] == 1
    assert samples[("persona_monitor_windows_total", (("status", "drift"),))] == 1
    assert samples[("persona_monitor_last_window_status", (("status", "drift"),))] == 1
    assert samples[("persona_monitor_last_window_status", (("status", "warning"),))] == 0
    assert samples[("persona_monitor_last_window_decided_timestamp_seconds", ())] == 1_000.0
    assert (
        samples[("persona_monitor_last_window_end_timestamp_seconds", ())]
        == (end + timedelta(days=7)).timestamp()
    )
    assert samples[("persona_monitor_verdict_seconds_count", ())] == 2
    metrics.window_decided("ok", end, None)  # adopted: counted, no verdict time of ours
    assert _samples(metrics)[("persona_monitor_verdict_seconds_count", ())] == 2


def test_watermark_lag_behind_the_clock_and_the_newest_event() -> None:
    now = datetime.now(UTC)
    marks = {"value": (None, None)}
    metrics = MonitorMetrics(MonitorStats(), watermarks=lambda: marks["value"])  # type: ignore[arg-type,return-value]
    assert not any(name == "persona_monitor_watermark_lag_seconds" for name, _ in _samples(metrics))
    marks["value"] = (now - timedelta(days=30), now - timedelta(days=29))  # type: ignore[assignment]
    samples = _samples(metrics)
    behind_clock = samples[("persona_monitor_watermark_lag_seconds", (("behind", "wall_clock"),))]
    behind_newest = samples[
        ("persona_monitor_watermark_lag_seconds", (("behind", "newest_event"),))
    ]
    assert 30 * 86400 <= behind_clock < 30 * 86400 + 600
    assert behind_newest == 86400
