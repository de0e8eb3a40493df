"""The monitor's Prometheus metrics, in a registry of its own (served by personas.metrics_endpoint).

Two kinds, for two reasons. What the consumer loop already counts (labels, invalid and late
events, retrain commands …) lives once, in :class:`~monitor.counters.MonitorStats`, and is read
at scrape time by a collector: counting it a second time in a Prometheus counter on the hot path
would cost per-event work and could disagree with the stop line. What only metrics need — the
status of each decided window, verdict seconds, when the last window was decided, how far the
watermark is behind — is recorded here by the judge thread (``window_decided``) and read from the
service (``watermarks``) at scrape time.

Names follow Prometheus conventions: ``persona_monitor_`` prefix, ``_total`` counters, ``_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from monitor.counters import MonitorStats

__all__ = ["STATUSES", "MonitorMetrics", "Watermarks"]

#: Every status a window can get (personas.schemas.DriftReport.status).
STATUSES = ("ok", "warning", "drift", "insufficient_data")

#: (watermark, newest event time seen) in event time, either None until known.
Watermarks = Callable[[], tuple[datetime | None, datetime | None]]

VERDICT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: MonitorStats field → (metric name without prefix, help).
_COUNTED = {
    "labels": ("labels_consumed", "Labels read from the labels topic and windowed."),
    "responses": ("responses_consumed", "Survey responses read (the labelled-share denominator)."),
    "invalid": ("invalid_labels", "Messages on the labels topic that are not a valid label."),
    "late": ("late_events", "Labels that arrived after their window was reported."),
    "future": ("future_events", "Events dated beyond the clock + future margin, ignored."),
    "windows": ("windows_closed", "Windows the watermark has closed (judged or adopted)."),
    "published": ("windows_published", "Windows this instance judged and published."),
    "adopted": ("windows_adopted", "Windows already decided (by a restart or another instance)."),
    "retrains": ("retrain_commands", "Retrain commands this instance published."),
}


class _StatsCollector(Collector):
    def __init__(
        self, stats: MonitorStats, watermarks: Watermarks, open_windows: Callable[[], int]
    ):
        self.stats = stats
        self.watermarks = watermarks
        self.open_windows = open_windows

    def collect(self) -> Iterator[Metric]:
        for field, (name, documentation) in _COUNTED.items():
            family = CounterMetricFamily(f"persona_monitor_{name}", documentation)
            family.add_metric([], float(getattr(self.stats, field)))
            yield family
        lag = GaugeMetricFamily(
            "persona_monitor_watermark_lag_seconds",
            "How far the event-time watermark is behind: the wall clock, or the newest event read.",
            labels=["behind"],
        )
        watermark, newest = self.watermarks()
        if watermark is not None:
            lag.add_metric(["wall_clock"], (datetime.now(UTC) - watermark).total_seconds())
            if newest is not None:
                lag.add_metric(["newest_event"], max(0.0, (newest - watermark).total_seconds()))
        yield lag
        opened = GaugeMetricFamily(
            "persona_monitor_open_windows", "Windows being filled (not closed by the watermark)."
        )
        opened.add_metric([], float(self.open_windows()))
        yield opened


class MonitorMetrics:
    """Every metric of one monitor instance; ``registry`` is what ``/metrics`` serves."""

    def __init__(
        self,
        stats: MonitorStats,
        *,
        watermarks: Watermarks = lambda: (None, None),
        open_windows: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self.windows = Counter(
            "persona_monitor_windows",
            "Windows decided, by status (judged here or adopted from the store).",
            ["status"],
            registry=self.registry,
        )
        self.verdict_seconds = Histogram(
            "persona_monitor_verdict_seconds",
            "Seconds to judge one window (the calibrated tests, without the Evidently report).",
            buckets=VERDICT_BUCKETS,
            registry=self.registry,
        )
        self.last_status = Gauge(
            "persona_monitor_last_window_status",
            "1 for the status of the newest decided window, 0 for the others.",
            ["status"],
            registry=self.registry,
        )
        self.last_decided = Gauge(
            "persona_monitor_last_window_decided_timestamp_seconds",
            "Wall-clock time the newest window was decided (alert: no window for too long).",
            registry=self.registry,
        )
        self.last_window_end = Gauge(
            "persona_monitor_last_window_end_timestamp_seconds",
            "Event-time end of the newest decided window.",
            registry=self.registry,
        )
        for status in STATUSES:
            self.windows.labels(status=status)  # every series exists from the start (rate() sees 0)
            self.last_status.labels(status=status).set(0)
        self.registry.register(_StatsCollector(stats, watermarks, open_windows))

    def window_decided(
        self, status: str, window_end: datetime, verdict_seconds: float | None = None
    ) -> None:
        """A window got its status (judged now, or adopted): count it and make it the newest."""
        self.windows.labels(status=status).inc()
        for known in STATUSES:
            self.last_status.labels(status=known).set(1 if known == status else 0)
        self.last_decided.set(self._clock())
        self.last_window_end.set(window_end.timestamp())
        if verdict_seconds is not None:
            self.verdict_seconds.observe(verdict_seconds)
