"""BatchProcessor: one model per batch, outputs confirmed before returning, Kafka re-sends."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personas.catalogue import FEATURES
from personas.errors import Stopping
from personas.model import CentroidModel
from personas.settings import Settings, TopicNames
from stream_app.backoff import Backoff
from stream_app.metrics import BatchHistogram, StreamMetrics
from stream_app.output import OutputFailed
from stream_app.pipeline import BatchProcessor
from stream_app.records import RawRecord
from stream_app.settings import StreamSettings
from stream_app.swap import follow_champion


class FakeOutput:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.produced: list[tuple[str, int]] = []
        self.confirmed = 0
        self.resent = 0

    def produce(self, topic: str, messages: list[Any]) -> None:
        self.produced.append((topic, len(messages)))

    def confirm(self) -> None:
        if self.failures:
            self.failures -= 1
            raise OutputFailed("broker down")
        self.confirmed += 1

    def reset(self) -> None:
        pass

    def send_all(self, batches: list[Any]) -> None:
        self.resent += 1
        for topic, messages in batches:
            self.produce(topic, messages)
        self.confirmed += 1


class FakeSink:
    def __init__(self, existing: int = 0) -> None:
        self.rows: list[Any] = []
        self.retries = 0
        self.existing = existing
        self.last_conflicts: list[str] = []

    def write(self, rows: list[Any]) -> int:
        self.rows.extend(rows)
        return len(rows) - self.existing


SETTINGS = Settings(topics=TopicNames(responses="in", labels="out", dlq="in.dlq"))


def _records(model: CentroidModel, n: int, bad: int = 0) -> list[RawRecord]:
    out = []
    for i in range(n):
        doc: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "respondent_id": f"r{i}",
            "submitted_at": "2026-11-26T10:00:00Z",
        }
        doc.update(dict(zip(FEATURES, model.centroids[i % 3].tolist(), strict=True)))
        out.append(RawRecord(None, json.dumps(doc).encode(), "in", 0, i, 0))
    out += [RawRecord(None, b"{", "in", 0, n + j, 0) for j in range(bad)]
    return out


class _NoChampion:
    """A registry without a champion: the follower starts on the vendor model."""

    def champion_version(self, settings: Settings) -> int | None:
        return None

    def load_version(self, settings: Settings, version: int) -> CentroidModel:
        raise AssertionError("nothing to load")


def _processor(
    output: FakeOutput, sink: FakeSink, state_dir: Path
) -> tuple[BatchProcessor, StreamMetrics]:
    metrics = StreamMetrics()
    holder = follow_champion(
        SETTINGS, StreamSettings(state_dir=state_dir), metrics, registry=_NoChampion()
    )
    holder.load()
    stop = threading.Event()
    return BatchProcessor(SETTINGS, holder, sink, output, metrics, stop), metrics  # type: ignore[arg-type]


def test_batch_goes_to_both_topics_and_the_sink(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    output, sink = FakeOutput(), FakeSink(existing=2)
    processor, metrics = _processor(output, sink, tmp_path)
    out = processor.process(_records(vendor_model, 10, bad=3))
    assert output.produced == [("out", 10), ("in.dlq", 3)]
    assert output.confirmed == 1 and output.resent == 0
    assert len(sink.rows) == 10 and out.model_version == 0
    get = metrics.registry.get_sample_value
    assert get("persona_stream_events_in_total") == 13
    assert get("persona_stream_events_labelled_total") == 10
    assert get("persona_stream_events_dead_lettered_total", {"kind": "not_json"}) == 3
    assert get("persona_stream_rows_inserted_total") == 8
    assert get("persona_stream_rows_duplicate_total") == 2
    assert get("persona_stream_batch_size_count") == 1
    assert get("persona_stream_event_to_label_seconds_count") == 10


def test_kafka_failure_resends_the_whole_batch(vendor_model: CentroidModel, tmp_path: Path) -> None:
    output, sink = FakeOutput(failures=1), FakeSink()
    processor, _ = _processor(output, sink, tmp_path)
    processor.process(_records(vendor_model, 4, bad=1))
    assert output.resent == 1
    assert output.produced == [("out", 4), ("in.dlq", 1), ("out", 4), ("in.dlq", 1)]


def test_swap_between_batches_never_mixes_versions(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    output, sink = FakeOutput(), FakeSink()
    processor, _ = _processor(output, sink, tmp_path)
    first = processor.process(_records(vendor_model, 3))
    v2 = CentroidModel.from_dict({**vendor_model.to_dict(), "version": 2})
    processor.holder.offer(v2, "test")
    second = processor.process(_records(vendor_model, 3))
    assert (first.model_version, second.model_version) == (0, 2)
    versions = [json.loads(v)["model_version"] for _, v in first.labels + second.labels]
    assert versions == [0, 0, 0, 2, 2, 2]


def test_backoff_grows_and_stops() -> None:
    stop = threading.Event()
    backoff = Backoff(stop, first=0.001, longest=0.004)
    delays = []
    for _ in range(4):
        delays.append(backoff.next_delay())
        backoff.wait()
    assert delays == [0.001, 0.002, 0.004, 0.004]
    stop.set()
    with pytest.raises(Stopping):
        backoff.wait()


def test_batch_histogram_counts_cumulatively() -> None:
    histogram = BatchHistogram("h", "doc", [0.01, 0.1, 1.0])
    histogram.observe_many(np.array([0.005, 0.01, 0.05, 0.5, 5.0]))
    (family,) = histogram.collect()
    samples = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert samples[("h_bucket", "0.01")] == 2
    assert samples[("h_bucket", "0.1")] == 3
    assert samples[("h_bucket", "1.0")] == 4
    assert samples[("h_bucket", "+Inf")] == 5
    assert samples[("h_count", None)] == 5
    assert samples[("h_sum", None)] == pytest.approx(5.565)


def test_labels_are_published_only_after_their_rows_are_committed(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    """The contract a consumer of both relies on: a label on the topic has its row committed."""
    events: list[str] = []

    class OrderedSink(FakeSink):
        def write(self, rows: list[Any]) -> int:
            events.append("rows committed")
            return super().write(rows)

    class OrderedOutput(FakeOutput):
        def produce(self, topic: str, messages: list[Any]) -> None:
            events.append(f"produce {topic}")
            super().produce(topic, messages)

    processor, _ = _processor(OrderedOutput(), OrderedSink(), tmp_path)
    prepared = processor.prepare(_records(vendor_model, 5, bad=1))
    assert events == []  # labelling alone sends nothing anywhere
    processor.make_durable(prepared)
    assert events == ["rows committed", "produce out", "produce in.dlq"]
