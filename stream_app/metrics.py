"""Prometheus metrics of one worker, in a registry of its own (served at ``/metrics``).

Per-event latency goes into a histogram filled with numpy per batch (``observe_many``): calling
``Histogram.observe`` for every event would take a lock per event on the hot path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

__all__ = ["LATENCY_BUCKETS", "BatchHistogram", "StreamMetrics"]

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class BatchHistogram(Collector):
    """A histogram updated with a whole array at once."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._counts = np.zeros(self.bounds.size + 1, dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        slots = np.searchsorted(self.bounds, values, side="left")
        counts = np.bincount(slots, minlength=self.bounds.size + 1)
        with self._lock:
            self._counts += counts
            self._sum += float(values.sum())

    def snapshot(self) -> tuple[np.ndarray, float]:
        with self._lock:
            return self._counts.copy(), self._sum

    def collect(self) -> Iterator[HistogramMetricFamily]:
        counts, total = self.snapshot()
        cumulative = np.cumsum(counts)
        buckets = [(repr(float(b)), int(c)) for b, c in zip(self.bounds, cumulative, strict=False)]
        buckets.append(("+Inf", int(cumulative[-1])))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, total)
        yield family


class StreamMetrics:
    """Every metric the worker exposes; one instance per worker."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_in = Counter("persona_stream_events_in", "Events consumed.", registry=r)
        self.labelled = Counter("persona_stream_events_labelled", "Events labelled.", registry=r)
        self.dead_lettered = Counter(
            "persona_stream_events_dead_lettered",
            "Events sent to the DLQ, by error kind.",
            ["kind"],
            registry=r,
        )
        self.dead_letters_dropped = Counter(
            "persona_stream_dead_letters_dropped",
            "Dead letters the broker refused for good (too large, not authorised): given up, "
            "so the stream goes on; the original stays at its input offset (logged).",
            registry=r,
        )
        self.event_id_conflicts = Counter(
            "persona_stream_event_id_conflicts",
            "Events whose event_id was already stored with another payload (the first label is "
            "kept; logged with the ids).",
            registry=r,
        )
        self.rows_inserted = Counter(
            "persona_stream_rows_inserted", "New persona_labels rows.", registry=r
        )
        self.rows_duplicate = Counter(
            "persona_stream_rows_duplicate",
            "Label rows already present (re-delivered events).",
            registry=r,
        )
        self.batch_size = Histogram(
            "persona_stream_batch_size",
            "Events per batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "persona_stream_batch_seconds",
            "Time to label a batch and make it durable (Kafka acks + PostgreSQL commit).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.latency = BatchHistogram(
            "persona_stream_event_to_label_seconds",
            "Kafka record timestamp to durable label (for replays: the event's age).",
            LATENCY_BUCKETS,
        )
        r.register(self.latency)
        self.model_version = Gauge(
            "persona_stream_model_version", "Version of the model labelling now.", registry=r
        )
        self.model_swaps = Counter(
            "persona_stream_model_swaps",
            "Hot-swap attempts by result (applied, refused).",
            ["result"],
            registry=r,
        )
        self.retries = Counter(
            "persona_stream_retries",
            "Retries of a batch's outputs, by target (postgres, kafka).",
            ["target"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "persona_stream_consumer_lag",
            "High watermark minus next offset to process, per assigned partition.",
            ["partition"],
            registry=r,
        )

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
