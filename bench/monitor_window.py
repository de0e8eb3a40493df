"""How long the monitor takes per window, and what the consumer hot path costs per event.

Measured in one run, on the same synthetic data (vendor centroids, std 2, a 5,000-row reference):
  * hot path: parse a PersonaLabel (pydantic, from JSON bytes) and add it to a window, per event;
  * verdict: relabel + the six calibrated tests for a window of --events events, beside the
    four pooled ones alone (the verdict before the per-persona tests of issue #16);
  * a window 10× bigger than ``max_window_events`` (kept as a 20,000-event sample);
  * baseline: Evidently's new-API Report with DataDriftPreset (its default verdict) on raw
    x1..x10, and the full report the monitor writes (raw + residuals + distance + persona).

    .venv/bin/python bench/monitor_window.py [--events 10000] [--reference 5000]
    .venv/bin/python bench/monitor_window.py --kafka 1000000  # service throughput via the stack
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from monitor.evidently_report import run_report
from monitor.judge import judge
from monitor.settings import TEST_NAMES, MonitorSettings
from monitor.stats import Reference, label_window
from monitor.windows import ClosedWindow, TimeWindower, WindowEvent
from personas.catalogue import FEATURES, load_vendor_catalogue
from personas.model import CentroidModel
from personas.schemas import PersonaLabel

T0 = datetime(2025, 3, 3, tzinfo=UTC)


def draw(rng: np.random.Generator, centroids: np.ndarray, n: int, std: float = 2.0) -> np.ndarray:
    which = rng.choice(len(centroids), size=n)
    return centroids[which] + rng.normal(0.0, std, size=(n, centroids.shape[1]))


def labels_json(
    model: CentroidModel, x: np.ndarray, *, start: int = 0, step_s: float = 1.0
) -> list[bytes]:
    """PersonaLabel JSON for rows of ``x``, event k at T0 + (start + k)·step_s."""
    lab = model.label(x)
    out = []
    for i in range(len(x)):
        t = T0 + timedelta(seconds=(start + i) * step_s)
        out.append(
            PersonaLabel(
                event_id=uuid.uuid4(),
                respondent_id=f"r{i}",
                submitted_at=t,
                persona_id=int(lab.persona_id[i]),
                persona_name=model.name_of(int(lab.persona_id[i])),
                distance=float(lab.distance[i]),
                margin=float(lab.margin[i]),
                is_outlier=bool(lab.is_outlier[i]),
                model_version=1,
                labelled_at=t,
                **{name: float(v) for name, v in zip(FEATURES, x[i], strict=True)},
            )
            .model_dump_json()
            .encode()
        )
    return out


def window_of(raw: list[bytes], max_events: int) -> tuple[float, ClosedWindow]:
    windower = TimeWindower(
        timedelta(days=7),
        origin=datetime(2024, 1, 1, tzinfo=UTC),
        max_events=max_events,
        label="7d",
    )
    started = time.perf_counter()
    for offset, value in enumerate(raw):
        label = PersonaLabel.model_validate_json(value)
        event = WindowEvent(
            label.event_id, label.submitted_at, label.features(), label.model_version
        )
        windower.add_label(event, ("labels", 0), offset)
    (closed,) = windower.advance(T0 + timedelta(days=7))
    return time.perf_counter() - started, closed


def best(fn: Callable[[], object], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events per window")
    parser.add_argument("--reference", type=int, default=5_000, help="reference rows")
    parser.add_argument(
        "--kafka",
        type=int,
        default=0,
        metavar="N",
        help="instead: the service on N labels through the running stack (fresh topics/schema), "
        "beside a bare consume loop and consume + msgspec decode",
    )
    parser.add_argument("--window", default="7d", help="window size for --kafka (default 7d)")
    args = parser.parse_args()
    if args.kafka:
        kafka_throughput(args.kafka, args.window)
        return

    vendor = load_vendor_catalogue()
    model = CentroidModel(vendor.centroids, vendor.ids, vendor.names, version=1)
    rng = np.random.default_rng(1)
    ref = Reference.build(model, draw(rng, vendor.centroids, args.reference))
    ms = MonitorSettings(_env_file=None, reports="never")
    import scipy.stats  # noqa: F401  (warm-up, as the service does)

    raw = labels_json(model, draw(rng, vendor.centroids, args.events, std=3.1))
    hot, window = window_of(raw, ms.max_window_events)
    print(f"window {args.events} events, reference {args.reference} rows")
    print(
        f"hot path (parse + window) {hot / args.events * 1e6:8.1f} µs/event "
        f"({args.events / hot:,.0f} events/s)"
    )

    verdict_s = best(lambda: judge(window, ref, ms))
    pooled = ms.model_copy(update={"tests": TEST_NAMES[:4]})
    pooled_s = best(lambda: judge(window, ref, pooled))
    print(f"monitor verdict (relabel + 6 tests)      {verdict_s * 1000:8.1f} ms")
    print(
        f"  the four pooled tests alone            {pooled_s * 1000:8.1f} ms "
        f"(per-persona tests ×{verdict_s / pooled_s:.2f})"
    )

    big = 10 * ms.max_window_events
    big_raw = labels_json(model, draw(rng, vendor.centroids, big))
    big_hot, big_window = window_of(big_raw, ms.max_window_events)
    big_s = best(lambda: judge(big_window, ref, ms))
    print(
        f"{big:,}-event window: windowing {big_hot:.1f} s ({big / big_hot:,.0f} events/s), "
        f"kept {big_window.kept:,} (sampled={big_window.sampled}), verdict {big_s * 1000:.1f} ms"
    )

    import evidently.presets  # noqa: F401  (≈5 s import, not counted)
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    cur = pd.DataFrame(window.features, columns=list(FEATURES))
    refdf = pd.DataFrame(ref.features, columns=list(FEATURES))
    baseline_s = best(lambda: Report([DataDriftPreset()], include_tests=True).run(cur, refdf), 2)
    print(f"baseline: Evidently DataDriftPreset raw x1..x10 {baseline_s * 1000:8.1f} ms")
    frame = label_window(model, window.features)
    full_s = best(lambda: run_report(ref, window.features, frame), 2)
    print(f"monitor's Evidently report (23 columns, ≤5k rows each) {full_s * 1000:8.1f} ms")


def _bare_consume(settings: Any, group: str, total: int, decode: bool) -> tuple[float, float]:
    """Seconds (wall, process CPU) to read ``total`` labels with the best plain loop:
    ``consume(1000)``, values out (and, with ``decode``, every batch through the msgspec
    decoder), from the first message."""
    from confluent_kafka import Consumer

    from personas.kafka import consumer_config
    from personas.label_fast import decode_labels

    consumer = Consumer(consumer_config(settings, group))
    consumer.subscribe([settings.topics.labels])
    seen, started, cpu = 0, None, 0.0
    try:
        while seen < total:
            batch = consumer.consume(num_messages=1000, timeout=1.0)
            if batch and started is None:
                started, cpu = time.perf_counter(), time.process_time()
            values = [m.value() for m in batch if m.error() is None]
            if decode and values:
                decoded = decode_labels(values)
                assert decoded is not None
            seen += len(values)
        assert started is not None
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        consumer.close()


def kafka_throughput(events: int, window: str) -> None:
    """Through the real stack, on one topic of fresh names: ``events`` labels over 4 weeks, read
    three ways in the same run — a bare consume loop, the same loop with the msgspec decode (the
    best code for "read the labels"), and the monitor service itself, from the first label it
    reads until it has read them all (and, separately, until the windows are published)."""
    import threading
    import uuid as _uuid

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient

    from monitor.reference import StaticReference
    from monitor.service import MonitorStats, run
    from monitor.settings import parse_duration
    from personas import db
    from personas.kafka import admin_config, ensure_topics, producer_config, topic_specs
    from personas.settings import Settings, TopicNames

    tag = _uuid.uuid4().hex[:8]
    base = Settings()
    settings = base.model_copy(
        update={
            "topics": TopicNames.private(f"bench-{tag}"),
            "pg_schema": f"bench_{tag}",
        }
    )
    ensure_topics(settings, topic_specs(settings))
    vendor = load_vendor_catalogue()
    model = CentroidModel(vendor.centroids, vendor.ids, vendor.names, version=1)
    rng = np.random.default_rng(3)
    ref = Reference.build(model, draw(rng, vendor.centroids, 5000))
    size = parse_duration(window)
    windows = int(timedelta(days=28) / size)
    try:
        producer = Producer(producer_config(settings))
        step = 28 * 86_400 / events
        chunk = 20_000
        for first in range(0, events, chunk):
            n = min(chunk, events - first)
            x = draw(rng, vendor.centroids, n)
            for i, value in enumerate(labels_json(model, x, start=first, step_s=step)):
                producer.produce(settings.topics.labels, value, f"r{first + i}".encode())
                producer.poll(0)
        # one event a window later closes the last window
        later = int(events + size.total_seconds() // step + 1)
        last = labels_json(model, vendor.centroids[:1], start=later, step_s=step)
        producer.produce(settings.topics.labels, last[0])
        producer.flush(60)
        total = events + 1
        print(
            f"{total:,} labels on {settings.topics.labels} ({settings.kafka_partitions} partitions)"
        )
        bare = _bare_consume(settings, f"bench-{tag}-bare", total, decode=False)
        decoded = _bare_consume(settings, f"bench-{tag}-decode", total, decode=True)
        ms = MonitorSettings(
            _env_file=None,
            window=window,
            reports="never",
            consume_responses=False,
            group_id=f"bench-{tag}",
            metrics_port=0,
        )
        stop, stats = threading.Event(), MonitorStats()
        thread = threading.Thread(
            target=run,
            args=(settings, ms, stop),
            kwargs={"reference": StaticReference(ref), "stats": stats},
        )
        started = time.perf_counter()
        thread.start()
        while stats.labels == 0 and thread.is_alive():
            time.sleep(0.001)
        reading, cpu = time.perf_counter(), time.process_time()
        while stats.labels < total and thread.is_alive():
            time.sleep(0.01)
        consumed, cpu = time.perf_counter(), time.process_time() - cpu
        while (
            stats.published < windows and thread.is_alive() and time.perf_counter() - started < 300
        ):
            time.sleep(0.05)
        done = time.perf_counter()
        stop.set()
        thread.join(30)
        rows = [
            ("bare consume loop (consume(1000), values)", bare),
            ("  + msgspec decode of every batch (the ceiling)", decoded),
            ("the monitor service (route, windows, judge thread)", (consumed - reading, cpu)),
        ]
        print(f"{'':55s} {'labels/s':>10s}  {'wall s':>6s}  CPU s per 1M (this process)")
        for name, (seconds, cpu_s) in rows:
            print(
                f"{name:55s} {total / seconds:>10,.0f}  {seconds:6.2f}  {cpu_s / total * 1e6:6.2f}"
            )
        print(
            f"monitor: ×{decoded[0] / (consumed - reading):.2f} of the ceiling; start-up "
            f"{reading - started:.1f} s; {stats.published}/{windows} {window} windows published "
            f"{done - started:.1f} s after start; late {stats.late}, invalid {stats.invalid}"
        )
    finally:
        admin = AdminClient(admin_config(settings))
        for future in admin.delete_topics([s.name for s in topic_specs(settings)]).values():
            with contextlib.suppress(Exception):  # cleanup must not hide the figures
                future.result(15)
        with db.connect(settings, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')


if __name__ == "__main__":
    main()
