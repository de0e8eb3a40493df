"""The REST service's Prometheus metrics, right under Gunicorn's several worker processes.

Each Gunicorn worker is its own process with its own counters, and a scrape reaches one of them
at random, so per-process registries would make every scrape show a different fraction of the
traffic. prometheus_client's multiprocess mode is the fix (its docs, "Multiprocess Mode"): each
process writes its values to memory-mapped files in one directory, and ``/metrics`` adds up the
files of every process. What that needs, all done here and in serving/server.py:

* ``PROMETHEUS_MULTIPROC_DIR`` set, and prometheus_client's value class chosen, in the master
  *before* the workers fork (``enable_multiprocess``) — a private, emptied directory per server,
  so two servers, or a restart, never add up stale files;
* ``/metrics`` collecting through ``MultiProcessCollector`` over a fresh registry per scrape;
* a worker that exits marked dead (``mark_process_dead`` in Gunicorn's ``child_exit``), so its
  live gauges disappear; counters of dead workers stay counted, as counters must.

Gauges say how they combine: the model version per live worker (``liveall``: a worker left on an
old version shows up), so a dashboard can show ``max`` and ``min``. Without multiprocess mode (the
app built in a test) the metrics live in the app's own registry.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from personas.champion import LoadedModel

__all__ = ["MULTIPROC_ENV", "ServeMetrics", "enable_multiprocess", "mark_worker_dead"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def enable_multiprocess(directory: Path) -> None:
    """In Gunicorn's master, before any worker forks: an empty ``directory`` for the workers'
    metric files, and prometheus_client switched to writing them (it picks its value class when
    first imported, and may have been imported before the environment variable was set)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def mark_worker_dead(pid: int) -> None:
    """Gunicorn ``child_exit``: the worker's live gauges go; its counters stay counted."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class ServeMetrics:
    """Every metric of one REST worker. ``exposition`` is the body of ``GET /metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "persona_serve_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "persona_serve_request_seconds",
            "Seconds from the request reaching the app to its response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.records = Counter(
            "persona_serve_predicted_records",
            "Records labelled by POST /predict.",
            registry=self.registry,
        )
        self.model_version = Gauge(
            "persona_serve_model_version",
            "Model version each live worker labels with (0: the vendor centroids).",
            registry=self.registry,
            multiprocess_mode="liveall",
        )

    def answered(self, route: str, status: int, started: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(time.perf_counter() - started)

    def model_swapped(self, loaded: LoadedModel, previous: LoadedModel | None = None) -> None:
        self.model_version.set(loaded.model.version)

    def exposition(self) -> bytes:
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
