"""Helpers of the trainer integration tests (a uniquely named module: conftest is not importable)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from personas import db
from personas.catalogue import FEATURES
from personas.kafka import consumer_config
from personas.model import CentroidModel
from personas.schemas import RetrainCommand, utc_now
from personas.settings import Settings

#: Event-time origin of the test data (a replayed month, far from wall-clock "now").
FEB = datetime(2025, 2, 1, tzinfo=UTC)


def blobs(
    centroids: np.ndarray, per_cluster: int, std: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(x, row index of the true centroid) — interleaved so any time slice holds every group."""
    rng = np.random.default_rng(seed)
    which = np.arange(per_cluster * centroids.shape[0]) % centroids.shape[0]
    return centroids[which] + rng.normal(0.0, std, size=(len(which), centroids.shape[1])), which


def insert_labels(
    settings: Settings, model: CentroidModel, x: np.ndarray, start: datetime, span: timedelta
) -> None:
    """Rows as the stream app would write them (labelled by ``model``), spread over ``span``."""
    labels = model.label(x)
    step = span / len(x)
    now = utc_now()
    rows = [
        (
            uuid.uuid4(),
            f"r-{i}",
            start + i * step,
            *map(float, x[i]),
            int(labels.persona_id[i]),
            model.persona_names[int(labels.index[i])],
            float(labels.distance[i]),
            float(labels.margin[i]),
            bool(labels.is_outlier[i]),
            model.version,
            now,
        )
        for i in range(len(x))
    ]
    columns = ", ".join(FEATURES)
    with db.connect(settings) as conn:
        conn.cursor().executemany(
            "INSERT INTO persona_labels (event_id, respondent_id, submitted_at, "
            f"{columns}, persona_id, persona_name, distance, margin, is_outlier, model_version,"
            " labelled_at) VALUES (" + ", ".join(["%s"] * 20) + ")",
            rows,
        )
        conn.commit()


def command(
    start: datetime, end: datetime, reason: str = "test", requested_at: datetime | None = None
) -> RetrainCommand:
    return RetrainCommand(
        command_id=uuid.uuid4(),
        range_start=start,
        range_end=end,
        reason=reason,
        requested_by="test",
        requested_at=requested_at or utc_now(),
    )


def read_all(settings: Settings, topic: str) -> list[tuple[str | None, dict[str, Any]]]:
    """Every message of partition 0 of ``topic`` up to the high watermark (exact, no timeout race)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(settings, f"read-{uuid.uuid4().hex}"))
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        if high <= low:
            return []
        consumer.assign([TopicPartition(topic, 0, low)])
        out: list[tuple[str | None, dict[str, Any]]] = []
        while len(out) < high - low:
            msg = consumer.poll(10)
            assert msg is not None, f"timed out reading {topic} at {len(out)}/{high - low}"
            assert msg.error() is None, msg.error()
            key = msg.key().decode() if msg.key() is not None else None
            out.append((key, json.loads(msg.value())))
        return out
    finally:
        consumer.close()
