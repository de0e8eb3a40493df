"""Producer throughput on a month of N events against a bare confluent-kafka produce loop.

All measured in one run, against the local broker, each on a fresh topic with the production spec
(partitions from settings, lz4, acks=all, idempotent — the same client config for every row):

  * generate: ``generate_month`` (centroids + noise, timestamps, ids) for N rows;
  * write/read: Parquet and CSV files of the month;
  * validate: ``validate_frame`` (vectorised checks of every row);
  * JSON: ``build_payloads`` for all rows (orjson + Arrow kernels) vs pydantic per row on a sample;
  * publish_rows: validation + schema sample + JSON + produce + every delivery counted — what
    ``persona publish`` does after reading the file;
  * baseline: a bare loop ``producer.produce(topic, value, key, timestamp=…)`` over the SAME
    payloads, keys and timestamps, prebuilt in memory, no delivery callback, then ``flush()``.

``--rounds R`` runs publish_rows and the bare loop alternately R times (each on a fresh topic) and
reports each round's ratio and their median: on a shared machine a single pair of runs can land
in different load. ``--profile`` prints cProfile's top lines of one more publish_rows (main
thread; the JSON thread's C work shows only as the main thread waiting for it).

    .venv/bin/python bench/producer_throughput.py [--events 1000000] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import pstats
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from personas.catalogue import load_vendor_catalogue
from personas.kafka import (
    KEEP_FOREVER,
    TopicSpec,
    admin_config,
    ensure_topics,
    produce_waiting,
    producer_config,
)
from personas.schemas import SurveyResponse
from personas.settings import Settings
from producer.files import read_events, write_events
from producer.generator import MonthSpec, generate_month
from producer.payloads import build_payloads
from producer.publisher import publish_rows
from producer.validation import validate_frame


@contextlib.contextmanager
def timed(label: str, results: list[tuple[str, float, int]], n: int) -> Iterator[None]:
    start = time.perf_counter()
    yield
    results.append((label, time.perf_counter() - start, n))


def bare_loop(
    settings: Settings, topic: str, payloads: list[bytes], keys: list[str], stamps: list[int]
) -> float:
    from confluent_kafka import Producer

    producer = Producer(producer_config(settings))
    produce = producer.produce
    started = time.perf_counter()
    for value, key, stamp in zip(payloads, keys, stamps, strict=True):
        try:
            produce(topic, value, key, timestamp=stamp)
        except BufferError:
            produce_waiting(producer, topic, value, key, timestamp=stamp)
    left = producer.flush(120)
    elapsed = time.perf_counter() - started
    if left:
        raise SystemExit(f"baseline: {left} messages not delivered")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    n = args.events
    settings = Settings()
    catalogue = load_vendor_catalogue()
    results: list[tuple[str, float, int]] = []
    run = uuid.uuid4().hex[:8]
    topics = {
        f"{name}-{r}": f"bench-producer-{name}-{r}-{run}"
        for r in range(args.rounds + 1)
        for name in ("ours", "bare")
    }
    ensure_topics(
        settings,
        [TopicSpec(t, settings.kafka_partitions, dict(KEEP_FOREVER)) for t in topics.values()],
    )
    try:
        with timed("generate_month", results, n):
            month = generate_month(MonthSpec("2025-01", n, 2.0, 42), catalogue)
        with tempfile.TemporaryDirectory() as tmp:
            for ext in ("parquet", "csv"):
                path = Path(tmp) / f"m.{ext}"
                with timed(f"write {ext}", results, n):
                    write_events(month, path)
                with timed(f"read {ext}", results, n):
                    read_events(path)
        with timed("validate_frame (every row)", results, n):
            events, errors = validate_frame(month)
        assert not errors
        with timed("build_payloads (JSON: orjson + Arrow)", results, n):
            payloads = build_payloads(events)
        sample = min(n, 20_000)
        rows = month.head(sample).to_dict(orient="records")
        with timed("pydantic model + model_dump_json per row", results, sample):
            for row in rows:
                SurveyResponse.model_validate(row).model_dump_json()
        keys = events.respondent_id.tolist()
        stamps = (events.submitted_us // 1000).tolist()

        ratios = []
        cpu: list[tuple[float, float]] = []  # (ours, bare) CPU seconds of this process
        for r in range(args.rounds):
            started, cpu_started = time.perf_counter(), time.process_time()
            summary = publish_rows(settings, month, topic=topics[f"ours-{r}"])
            ours, cpu_ours = time.perf_counter() - started, time.process_time() - cpu_started
            assert summary.sent == n and summary.failed == 0, summary.line()
            results.append((f"publish_rows (validate + JSON + produce), round {r + 1}", ours, n))
            cpu_started = time.process_time()
            bare = bare_loop(settings, topics[f"bare-{r}"], payloads, keys, stamps)
            cpu.append((cpu_ours, time.process_time() - cpu_started))
            results.append((f"baseline: bare produce loop, prebuilt, round {r + 1}", bare, n))
            ratios.append(bare / ours)
        if args.profile:
            profile = cProfile.Profile()
            profile.enable()
            publish_rows(settings, month, topic=topics[f"ours-{args.rounds}"])
            profile.disable()
            text = io.StringIO()
            pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(12)
            print(text.getvalue())
    finally:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(admin_config(settings))
        for future in admin.delete_topics(list(topics.values()), operation_timeout=30).values():
            with contextlib.suppress(Exception):
                future.result(timeout=60)

    print(f"\nproducer throughput, {n:,} events, {settings.kafka_partitions} partitions, lz4\n")
    print(f"{'step':58s} {'seconds':>9s} {'rows/s':>12s}")
    for label, seconds, rows_done in results:
        print(f"{label:58s} {seconds:9.2f} {rows_done / seconds:12,.0f}")
    per_million = 1e6 / n
    print(
        "\nCPU seconds per million events (this process, every thread), publish_rows / bare loop:"
    )
    for r, (cpu_ours, cpu_bare) in enumerate(cpu):
        print(f"  round {r + 1}: {cpu_ours * per_million:.2f} / {cpu_bare * per_million:.2f}")
    each = ", ".join(f"{x:.2f}" for x in ratios)
    print(
        f"\npublish_rows / bare loop: {statistics.median(ratios):.2f} of the baseline's events/s "
        f"(median of {len(ratios)} alternating rounds: {each})"
    )


if __name__ == "__main__":
    main()
