"""The pure core of the worker: raw Kafka records in, labels + rows + dead letters out.

No Kafka, no Faust, no database here, so the same function serves both engines, the bare
confluent-kafka baseline of the benchmark and the unit tests. One call handles one batch, labelled
by exactly one model (the caller reads the model once per batch, so versions never mix).

Why it is written in columns (docs/benchmarks/stream_app.md, "Profile"): per-event Python was
three quarters of the worker's time. A batch whose events are all valid in the canonical form is
decoded by msgspec in C loops (``personas.survey_fast.decode_all``); any other batch is decided
event by event (msgspec's narrow mirror of the contract, else pydantic, which also writes the DLQ
reason). Everything after that works on the whole batch at once — numpy for the features,
labels, timestamps and the binary COPY payload (``stream_app.pg_copy``), and msgspec, called
through ``map``, for the label JSON.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from operator import attrgetter, floordiv, sub
from typing import Any
from uuid import UUID

import msgspec
import numpy as np

from personas.catalogue import FEATURES
from personas.errors import InvalidEvent
from personas.model import CentroidModel
from personas.schemas import MAX_EVENT_BYTES, SurveyResponse, parse_survey_response, utc_now
from personas.survey_fast import (
    SurveyResponseStruct,
    decode_all,
    decode_survey_response,
    from_model,
)
from stream_app.dlq import DeadLetterRecord, dead_letter
from stream_app.records import RawRecord

__all__ = ["LABEL_COLUMNS", "LABEL_TYPES", "BatchOutput", "LabelRows", "label_batch", "parse"]

#: Columns of persona_labels in the order rows are given (``LabelRows`` iterates them so).
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
#: PostgreSQL types of LABEL_COLUMNS (psycopg's ``copy.set_types`` for a row-by-row binary COPY:
#: the benchmarks' baselines; the worker builds its payload in ``pg_copy``).
LABEL_TYPES: tuple[str, ...] = (
    "uuid",
    "text",
    "timestamptz",
    *("float8",) * 10,
    "int4",
    "text",
    "float8",
    "float8",
    "bool",
    "int4",
    "timestamptz",
)

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


@dataclass(eq=False)
class LabelRows:
    """A batch's persona_labels rows, held as columns (what the sink COPYs in one buffer).

    Iterating gives the rows as tuples in ``LABEL_COLUMNS`` order with the values the table
    stores (UUID, aware UTC datetimes, …): for tests and for any consumer that wants rows."""

    event_ids: list[str] = field(default_factory=list)  # canonical lower-case UUID text
    respondent_ids: list[str] = field(default_factory=list)
    respondent_bytes: list[bytes] = field(default_factory=list)  # UTF-8 (also the Kafka keys)
    submitted_us: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # Unix µs
    x: np.ndarray = field(default_factory=lambda: np.zeros((0, len(FEATURES))))
    persona_id: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    persona_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    persona_names: tuple[str, ...] = ()  # by persona_index
    distance: np.ndarray = field(default_factory=lambda: np.zeros(0))
    margin: np.ndarray = field(default_factory=lambda: np.zeros(0))
    is_outlier: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    model_version: int = 0
    labelled_at: datetime = _UNIX_EPOCH

    def __len__(self) -> int:
        return len(self.event_ids)

    def __eq__(self, other: object) -> bool:
        """Equal to another batch, or a list of row tuples, with the same rows."""
        if isinstance(other, LabelRows | list | tuple):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable columns

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        names = self.persona_names
        columns = zip(
            self.event_ids,
            self.respondent_ids,
            self.submitted_us.tolist(),
            self.x.tolist(),
            self.persona_id.tolist(),
            self.persona_index.tolist(),
            self.distance.tolist(),
            self.margin.tolist(),
            self.is_outlier.tolist(),
            strict=True,
        )
        for event_id, respondent, us, x, pid, index, distance, margin, outlier in columns:
            yield (
                UUID(event_id),
                respondent,
                _UNIX_EPOCH + timedelta(microseconds=us),
                *x,
                pid,
                names[index],
                distance,
                margin,
                outlier,
                self.model_version,
                self.labelled_at,
            )


@dataclass
class BatchOutput:
    """Everything one batch must make durable before its offsets may be committed."""

    model_version: int
    labels: list[tuple[bytes, bytes]] = field(default_factory=list)  # (key, PersonaLabel JSON)
    rows: LabelRows = field(default_factory=LabelRows)  # persona_labels rows
    dead_letters: list[DeadLetterRecord] = field(default_factory=list)  # (key, value, headers)
    error_kinds: dict[str, int] = field(default_factory=dict)
    event_timestamps_ms: list[int] = field(default_factory=list)  # of labelled events
    labelled_at: datetime | None = None

    @property
    def n_in(self) -> int:
        return len(self.labels) + len(self.dead_letters)


class _LabelDocument(msgspec.Struct, gc=False):
    """The PersonaLabel JSON as consumers have always seen it (same keys, same order); values
    parse to what the previous template wrote (tests/unit/stream_app/test_label_encoding.py)."""

    schema_version: int
    event_id: str
    respondent_id: str
    submitted_at: str
    persona_id: int
    persona_name: str
    distance: float
    margin: float
    is_outlier: bool
    model_version: int
    labelled_at: str
    x1: float
    x2: float
    x3: float
    x4: float
    x5: float
    x6: float
    x7: float
    x8: float
    x9: float
    x10: float


_encode = msgspec.json.Encoder().encode
_features_of = attrgetter(*FEATURES)
_event_id_of = attrgetter("event_id")
_respondent_of = attrgetter("respondent_id")
_value_of = attrgetter("value")
_timestamp_of = attrgetter("timestamp_ms")


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _iso_column(unix_us: np.ndarray) -> list[str]:
    """``_iso`` of each timestamp, for the whole column: ``…:SSZ`` for whole seconds,
    ``…:SS.ffffffZ`` otherwise (what ``isoformat`` writes)."""
    stamps = unix_us.astype("datetime64[us]")
    whole = (unix_us % 1_000_000) == 0
    if whole.all():
        text: list[str] = np.datetime_as_string(stamps, unit="s", timezone="UTC").tolist()
        return text
    fine = np.datetime_as_string(stamps, unit="us", timezone="UTC")
    if whole.any():
        fine = np.where(whole, np.datetime_as_string(stamps, unit="s", timezone="UTC"), fine)
    text = fine.tolist()
    return text


def parse(raw: bytes | None) -> SurveyResponse:
    """``parse_survey_response`` with a fast path for valid events.

    pydantic-core parses and validates JSON bytes in one step (~3× faster than ``json.loads`` +
    ``model_validate``); it accepts exactly the events ``parse_survey_response`` accepts (same
    model, size limits checked first), and anything it rejects is re-parsed by
    ``parse_survey_response`` so the DLQ gets the same stable error kind and reason. The batch
    path tries ``personas.survey_fast`` before this.
    """
    if raw and len(raw) <= MAX_EVENT_BYTES:
        try:
            return SurveyResponse.model_validate_json(raw)
        except ValueError:
            pass
    return parse_survey_response(raw)


#: How far ahead of the wall clock an event may claim to have been submitted by default.
FUTURE_MARGIN = timedelta(hours=1)


def _decide_one_by_one(
    records: list[RawRecord], out: BatchOutput, labelled_at: datetime, future_margin: timedelta
) -> tuple[list[SurveyResponseStruct], list[datetime], list[int]]:
    """A batch with at least one event outside the narrow form: each event decided alone (msgspec,
    else pydantic), the invalid ones dead-lettered into ``out`` with pydantic's reason."""
    good: list[SurveyResponseStruct] = []
    submitted: list[datetime] = []
    stamps: list[int] = []
    latest = labelled_at + future_margin
    decode = decode_survey_response
    for record in records:
        raw = record.value
        got = decode(raw)
        if got is None or got[1] > latest:
            try:
                if got is None:
                    got = from_model(parse(raw))
                if got[1] > latest:
                    raise InvalidEvent(
                        "future_timestamp",
                        f"submitted_at {_iso(got[1].astimezone(UTC))} is more than "
                        f"{future_margin.total_seconds():.0f} s after the clock of the worker "
                        f"({_iso(labelled_at)}; PERSONA_STREAM_FUTURE_MARGIN_S)",
                    )
            except InvalidEvent as exc:
                out.dead_letters.append(dead_letter(record, exc.kind, exc.reason))
                out.error_kinds[exc.kind] = out.error_kinds.get(exc.kind, 0) + 1
                continue
        good.append(got[0])
        submitted.append(got[1])
        stamps.append(record.timestamp_ms or 0)
    return good, submitted, stamps


def label_batch(
    records: list[RawRecord],
    model: CentroidModel,
    *,
    now: datetime | None = None,
    future_margin: timedelta = FUTURE_MARGIN,
) -> BatchOutput:
    """Validate, label (one matrix product for the batch) and serialise a batch of records.

    An event dated more than ``future_margin`` after the wall clock (a device with a wrong clock,
    a typo in a year) is dead-lettered as ``future_timestamp``: event time drives the monitor's
    windows, and one event from 2031 would close every window up to 2031 at once."""
    out = BatchOutput(model_version=model.version)
    labelled_at = now or utc_now()
    latest = labelled_at + future_margin
    whole = decode_all(list(map(_value_of, records)))
    if whole is not None and (not whole[1] or max(whole[1]) <= latest):
        # the common case, every event valid in the narrow form: decoded in C loops
        good, submitted = whole
        stamps = [stamp or 0 for stamp in map(_timestamp_of, records)]
    else:
        good, submitted, stamps = _decide_one_by_one(records, out, labelled_at, future_margin)
    out.labelled_at = labelled_at
    if not good:
        return out
    n = len(good)
    x = np.array(list(map(_features_of, good)), dtype=np.float64)
    labels = model.label(x)
    names = tuple(model.persona_names)
    version = model.version
    event_ids = list(map(_event_id_of, good))
    respondents = list(map(_respondent_of, good))
    keys = list(map(str.encode, respondents))
    # aware datetimes of any offset minus the epoch: exact integer microseconds, in C loops
    unix_us = np.fromiter(
        map(floordiv, map(sub, submitted, repeat(_UNIX_EPOCH)), repeat(_ONE_US)), np.int64, n
    )
    documents = map(
        _LabelDocument,
        repeat(1),
        event_ids,
        respondents,
        _iso_column(unix_us),
        labels.persona_id.tolist(),
        list(map(names.__getitem__, labels.index.tolist())),
        labels.distance.tolist(),
        labels.margin.tolist(),
        labels.is_outlier.tolist(),
        repeat(version),
        repeat(_iso(labelled_at)),
        *x.T.tolist(),
    )
    out.labels = list(zip(keys, map(_encode, documents), strict=True))
    out.rows = LabelRows(
        event_ids=event_ids,
        respondent_ids=respondents,
        respondent_bytes=keys,
        submitted_us=unix_us,
        x=x,
        persona_id=np.asarray(labels.persona_id, dtype=np.int64),
        persona_index=np.asarray(labels.index, dtype=np.int64),
        persona_names=names,
        distance=np.asarray(labels.distance, dtype=np.float64),
        margin=np.asarray(labels.margin, dtype=np.float64),
        is_outlier=np.asarray(labels.is_outlier, dtype=bool),
        model_version=version,
        labelled_at=labelled_at,
    )
    out.event_timestamps_ms = stamps
    return out
