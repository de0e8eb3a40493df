"""The pure core of the worker: raw Kafka records in, labels + rows + dead letters out.

No Kafka, no Faust, no database here, so the same function serves the Faust agent, the bare
confluent-kafka baseline of the benchmark and the unit tests. One call handles one batch, labelled
by exactly one model (the caller reads the model once per batch, so versions never mix).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from personas.catalogue import FEATURES
from personas.errors import InvalidEvent
from personas.model import CentroidModel
from personas.schemas import SurveyResponse, parse_survey_response, utc_now
from stream_app.dlq import dead_letter

__all__ = ["LABEL_COLUMNS", "BatchOutput", "RawRecord", "label_batch"]

#: Columns of persona_labels in the order rows are built (and COPYed).
LABEL_COLUMNS: tuple[str, ...] = (
    "event_id",
    "respondent_id",
    "submitted_at",
    *FEATURES,
    "persona_id",
    "persona_name",
    "distance",
    "margin",
    "is_outlier",
    "model_version",
    "labelled_at",
)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One consumed Kafka record, as bytes: what the DLQ must be able to give back intact."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


@dataclass
class BatchOutput:
    """Everything one batch must make durable before its offsets may be committed."""

    model_version: int
    labels: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, PersonaLabel JSON)
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # persona_labels rows
    dead_letters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)
    event_timestamps_ms: list[int] = field(default_factory=list)  # of labelled events
    labelled_at: datetime | None = None

    @property
    def n_in(self) -> int:
        return len(self.labels) + len(self.dead_letters)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def label_batch(
    records: list[RawRecord], model: CentroidModel, *, now: datetime | None = None
) -> BatchOutput:
    """Validate, label (one matrix product for the batch) and serialise a batch of records."""
    out = BatchOutput(model_version=model.version)
    good: list[SurveyResponse] = []
    stamps: list[int] = []
    for record in records:
        try:
            event = parse_survey_response(record.value)
        except InvalidEvent as exc:
            out.dead_letters.append(dead_letter(record, exc.kind, exc.reason))
            out.error_kinds[exc.kind] = out.error_kinds.get(exc.kind, 0) + 1
            continue
        good.append(event)
        stamps.append(record.timestamp_ms or 0)
    labelled_at = now or utc_now()
    out.labelled_at = labelled_at
    if not good:
        return out
    x = np.array([event.features() for event in good], dtype=np.float64)
    labels = model.label(x)
    names = model.persona_names
    labelled_iso = _iso(labelled_at)
    version = model.version
    persona_ids = labels.persona_id.tolist()
    indexes = labels.index.tolist()
    distances = labels.distance.tolist()
    margins = labels.margin.tolist()
    outliers = labels.is_outlier.tolist()
    rows = x.tolist()
    for i, event in enumerate(good):
        features = rows[i]
        document: dict[str, Any] = {
            "schema_version": 1,
            "event_id": str(event.event_id),
            "respondent_id": event.respondent_id,
            "submitted_at": _iso(event.submitted_at),
            "persona_id": persona_ids[i],
            "persona_name": names[indexes[i]],
            "distance": distances[i],
            "margin": margins[i],
            "is_outlier": outliers[i],
            "model_version": version,
            "labelled_at": labelled_iso,
        }
        document.update(zip(FEATURES, features, strict=True))
        out.labels.append(
            (event.respondent_id.encode(), json.dumps(document, separators=(",", ":")).encode())
        )
        out.rows.append(
            (
                event.event_id,
                event.respondent_id,
                event.submitted_at,
                *features,
                persona_ids[i],
                names[indexes[i]],
                distances[i],
                margins[i],
                outliers[i],
                version,
                labelled_at,
            )
        )
    out.event_timestamps_ms = stamps
    return out
