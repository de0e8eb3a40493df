"""The staircase's stages, each the fastest code we could write for it (bench/stream_staircase.py).

Run by the harness as ``python bench/staircase_steps.py STEP SOURCE SINK GROUP EVENTS``, one
process per step, each step doing everything the step before it did plus one stage:

1. ``consume``: confluent-kafka ``consume(num_messages=…)`` batches, every value read;
2. ``decode``: + msgspec decoding *and validation* against a Struct with the same rules as
   ``SurveyResponse`` (types, ±1000, lengths, aware timestamps, no extra fields), the whole batch
   in one call (one JSON array) with a per-event fallback to find the bad ones, + the
   future-timestamp check;
3. ``label``: + nearest centroid over the batch in numpy (one matrix product, argmin and a
   partition for the margin);
4. ``produce``: + PersonaLabel JSON (msgspec, one ``encode`` per label) produced to SINK with the
   project's producer settings (idempotent, acks=all, lz4); delivery waited for at the end only;
5. ``postgres``: + label rows by one binary ``COPY`` straight into ``persona_labels`` of the
   bench's own schema (``PERSONA_PG_SCHEMA``), the payload built from the batch's columns in
   numpy (``stream_app.pg_copy.binary_copy``: the fastest builder we have), falling back to a
   staging table and ``INSERT … ON CONFLICT (event_id) DO NOTHING`` only if a batch hits a
   duplicate key; on a writer thread so that batch N is written while batch N+1 is decoded
   (psycopg and librdkafka wait without the GIL);
6. ``offsets``: + the writer waits for the broker's acks of batch N (``flush``) and its
   PostgreSQL commit, then commits batch N's offsets: the worker's guarantee.

Each prints ``READY`` when its partitions are assigned and ``DONE <events>`` when every event is
through its last stage (delivered, committed); the harness times the two lines and reads the
process's CPU from /proc. Bad events are counted, not dead-lettered (the synthetic payloads are
all valid; the ceiling does not pay for a DLQ it never uses).
"""

from __future__ import annotations

import queue
import sys
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from personas import db  # noqa: E402
from personas.catalogue import load_vendor_catalogue  # noqa: E402
from personas.kafka import consumer_config, producer_config  # noqa: E402
from personas.model import CentroidModel  # noqa: E402
from personas.schemas import FEATURE_LIMIT  # noqa: E402
from personas.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from stream_app.labelling import LabelRows

STEPS = ("consume", "decode", "label", "produce", "postgres", "offsets")

Feature = Annotated[float, msgspec.Meta(ge=-FEATURE_LIMIT, le=FEATURE_LIMIT)]


class Survey(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """SurveyResponse's rules in msgspec: what the fast path of a validator can check in C."""

    event_id: uuid.UUID
    respondent_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    submitted_at: Annotated[datetime, msgspec.Meta(tz=True)]
    x1: Feature
    x2: Feature
    x3: Feature
    x4: Feature
    x5: Feature
    x6: Feature
    x7: Feature
    x8: Feature
    x9: Feature
    x10: Feature
    schema_version: Literal[1] = 1
    true_persona_id: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Label(msgspec.Struct, frozen=True):
    """PersonaLabel's fields in the contract's order (msgspec encodes them in this order)."""

    schema_version: int
    event_id: uuid.UUID
    respondent_id: str
    submitted_at: datetime
    persona_id: int
    persona_name: str
    distance: float
    margin: float
    is_outlier: bool
    model_version: int
    labelled_at: datetime
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


_BATCH = msgspec.json.Decoder(list[Survey])
_ONE = msgspec.json.Decoder(Survey)
_ENCODE = msgspec.json.Encoder().encode
_FEATURES = np.dtype((np.float64, 10))


def decode(values: list[bytes]) -> tuple[list[Survey], int]:
    """Valid events of a batch and how many were bad: one C call for a clean batch (a value
    that is two events once joined, ``{…},{…}``, shows in the count and is refused below)."""
    try:
        events = _BATCH.decode(b"[" + b",".join(values) + b"]")
        if len(events) == len(values):
            return events, 0
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    good: list[Survey] = []
    for value in values:
        try:
            good.append(_ONE.decode(value))
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue
    return good, len(values) - len(good)


def features(events: list[Survey]) -> np.ndarray:
    """The (n, 10) feature matrix, one C-level iteration."""
    rows = ((e.x1, e.x2, e.x3, e.x4, e.x5, e.x6, e.x7, e.x8, e.x9, e.x10) for e in events)
    return np.fromiter(rows, dtype=_FEATURES, count=len(events))


class Nearest:
    """Nearest centroid of a batch: ‖x‖² − 2·x·Cᵀ + ‖c‖², argmin, second smallest by partition."""

    def __init__(self, model: CentroidModel) -> None:
        self.centroids_t = np.ascontiguousarray(model.centroids.T)
        self.sq_norms = np.einsum("ij,ij->i", model.centroids, model.centroids)
        self.ids = np.asarray(model.persona_ids)
        self.names = model.persona_names
        self.threshold = model.outlier_distance
        self.version = model.version

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(index, distance, margin, is_outlier) of each row."""
        sq = x @ self.centroids_t
        sq *= -2.0
        sq += np.einsum("ij,ij->i", x, x)[:, None]
        sq += self.sq_norms
        np.maximum(sq, 0.0, out=sq)
        index = sq.argmin(axis=1)
        two = np.sqrt(np.partition(sq, 1, axis=1)[:, :2])
        return index, two[:, 0], two[:, 1] - two[:, 0], two[:, 0] > self.threshold


def encode(
    events: list[Survey],
    x: np.ndarray,
    labelled: tuple[np.ndarray, ...],
    nearest: Nearest,
    at: datetime,
) -> tuple[list[tuple[bytes, bytes]], LabelRows]:
    """(key, PersonaLabel JSON) of every event, and the batch's persona_labels rows as columns."""
    from stream_app.labelling import LabelRows

    index, distance, margin, outlier = (a.tolist() for a in labelled)
    persona_ids = nearest.ids[labelled[0]]
    ids = persona_ids.tolist()
    names, version = nearest.names, nearest.version
    labels: list[tuple[bytes, bytes]] = []
    respondents = [e.respondent_id for e in events]
    keys = [r.encode() for r in respondents]
    submitted = np.fromiter((e.submitted_at.timestamp() for e in events), np.float64, len(events))
    rows = LabelRows(
        event_ids=[str(e.event_id) for e in events],
        respondent_ids=respondents,
        respondent_bytes=keys,
        submitted_us=np.rint(submitted * 1e6).astype(np.int64),
        x=x,
        persona_id=persona_ids.astype(np.int64),
        persona_index=labelled[0],
        persona_names=tuple(names),
        distance=labelled[1],
        margin=labelled[2],
        is_outlier=labelled[3],
        model_version=version,
        labelled_at=at,
    )
    for i, e in enumerate(events):
        name = names[index[i]]
        labels.append(
            (
                keys[i],
                _ENCODE(
                    Label(
                        1, e.event_id, e.respondent_id, e.submitted_at, ids[i], name,
                        distance[i], margin[i], outlier[i], version, at,
                        e.x1, e.x2, e.x3, e.x4, e.x5, e.x6, e.x7, e.x8, e.x9, e.x10,
                    )
                ),
            )
        )  # fmt: skip
    return labels, rows


class Writer(threading.Thread):
    """Batch N's produce, COPY and (step ``offsets``) acks + offset commit, while the main thread
    decodes batch N+1. One batch may wait in the queue: back-pressure, never an unbounded lag."""

    def __init__(self, settings: Settings, producer: Any, consumer: Any, sink: str, wait: bool):
        super().__init__(daemon=True)
        self.conn = db.connect(settings)
        self.conn.execute(
            "CREATE TEMP TABLE stage (LIKE persona_labels INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        self.conn.commit()
        self.producer, self.consumer, self.sink, self.wait = producer, consumer, sink, wait
        self.inbox: queue.Queue[tuple[list[tuple[bytes, bytes]], LabelRows, list[Any]] | None]
        self.inbox = queue.Queue(maxsize=1)
        self.failed: BaseException | None = None

    def run(self) -> None:
        from psycopg.errors import UniqueViolation

        from stream_app.pg_copy import COPY_COLUMNS, binary_copy

        columns = ", ".join(COPY_COLUMNS)
        direct = f"COPY persona_labels ({columns}) FROM STDIN (FORMAT BINARY)"
        staged = f"COPY stage ({columns}) FROM STDIN (FORMAT BINARY)"
        merge = (
            f"INSERT INTO persona_labels ({columns}) SELECT {columns} FROM stage "
            "ON CONFLICT (event_id) DO NOTHING"
        )
        try:
            while (item := self.inbox.get()) is not None:
                labels, rows, offsets = item
                produce_all(self.producer, self.sink, labels)
                payload = binary_copy(rows)
                try:
                    with self.conn.cursor() as cur, cur.copy(direct) as copy:
                        copy.write(payload)
                except UniqueViolation:  # a re-delivered batch: the idempotent way
                    self.conn.rollback()
                    with self.conn.cursor() as cur:
                        with cur.copy(staged) as copy:
                            copy.write(payload)
                        cur.execute(merge)
                self.conn.commit()
                if self.wait:
                    if self.producer.flush(60):
                        raise RuntimeError("labels not acknowledged by the broker in 60 s")
                    self.consumer.commit(offsets=offsets, asynchronous=True)
        except BaseException as exc:  # reported by the main thread
            self.failed = exc


def produce_all(producer: Any, topic: str, labels: list[tuple[bytes, bytes]]) -> None:
    from personas.kafka import produce_waiting

    produce = producer.produce
    for key, value in labels:
        try:
            produce(topic, value, key)
        except BufferError:
            produce_waiting(producer, topic, value, key, wait_s=0.01)
    producer.poll(0)


def run(step: str, source: str, sink: str, group: str, events: int, batch: int) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    depth = STEPS.index(step)
    settings = Settings()
    nearest = Nearest(CentroidModel.from_catalogue(load_vendor_catalogue()))
    consumer = Consumer(consumer_config(settings, group, **{"fetch.wait.max.ms": 5}))
    producer = Producer(producer_config(settings, **{"linger.ms": 2})) if depth >= 3 else None
    writer = None
    if depth >= 4:
        writer = Writer(settings, producer, consumer, sink, wait=depth >= 5)
        writer.start()
    if producer is not None:  # the idempotent producer's id, before the clock starts
        producer.produce(sink, b"{}", b"warm-up")
        producer.flush(30)
    consumer.subscribe([source], on_assign=lambda *_: print("READY", flush=True))
    seen = bad = 0
    future = timedelta(hours=1)
    while seen < events:
        messages: list[Any] = consumer.consume(num_messages=batch, timeout=0.1)
        values = [m.value() for m in messages if m.error() is None]
        seen += len(values)
        if depth == 0 or not values:
            continue
        good, wrong = decode(values)
        now = datetime.now(UTC)
        late = now + future
        if good and max(e.submitted_at for e in good) > late:
            kept = [e for e in good if e.submitted_at <= late]
            wrong, good = wrong + len(good) - len(kept), kept
        bad += wrong
        if depth == 1 or not good:
            continue
        x = features(good)
        labelled = nearest(x)
        if depth == 2:
            continue
        labels, rows = encode(good, x, labelled, nearest, now)
        if writer is None:
            assert producer is not None
            produce_all(producer, sink, labels)
            continue
        ends: dict[tuple[str, int], int] = {}
        for m in messages:
            ends[(m.topic(), m.partition())] = m.offset() + 1
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        writer.inbox.put((labels, rows, offsets))
        if writer.failed is not None:
            raise writer.failed
    if writer is not None:
        writer.inbox.put(None)
        writer.join()
        if writer.failed is not None:
            raise writer.failed
    if producer is not None and producer.flush(60):
        raise SystemExit("labels not acknowledged by the broker in 60 s")
    if depth >= 5:  # what the writer committed asynchronously, now synchronously (if not yet)
        done = [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]
        consumer.commit(offsets=done, asynchronous=False)
    print(f"DONE {seen} bad={bad}", flush=True)
    consumer.close()


def main() -> None:
    step, source, sink, group, events, batch = sys.argv[1:7]
    if step not in STEPS:
        raise SystemExit(f"unknown step {step!r}: one of {', '.join(STEPS)}")
    run(step, source, sink, group, int(events), int(batch))


if __name__ == "__main__":
    main()
