"""One batch from raw records to durable outputs: label → PostgreSQL commit → produce → acks.

``BatchProcessor.process`` returns only when the batch's rows are committed in PostgreSQL *and*
its labels and dead letters are acknowledged by Kafka; only then does the agent acknowledge the
events to Faust (whose consumer commits acknowledged offsets). It runs on a worker thread so the
event loop keeps heartbeating and prefetching while a batch is written. ``process`` is two steps,
``prepare`` (label: CPU) and ``make_durable`` (write: mostly waiting on PostgreSQL and the broker,
GIL released), itself ``commit_rows`` then ``publish``, so that the batch engine can label batch
N+2 while the rows of batch N+1 are committed and the labels of batch N acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from personas.champion import ChampionFollower
from personas.settings import Settings
from stream_app.labelling import FUTURE_MARGIN, BatchOutput, label_batch
from stream_app.metrics import StreamMetrics
from stream_app.output import KafkaOutput, Message, OutputFailed
from stream_app.records import RawRecord
from stream_app.sink import PgSink

__all__ = ["BatchProcessor", "Committed", "Prepared"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A labelled batch not yet durable, and when its processing started (for the histogram)."""

    out: BatchOutput
    started: float


@dataclass(frozen=True)
class Committed:
    """A batch's rows committed in PostgreSQL: how many were new, after how many retries."""

    inserted: int
    pg_retries: int


class BatchProcessor:
    def __init__(
        self,
        settings: Settings,
        holder: ChampionFollower,
        sink: PgSink,
        output: KafkaOutput,
        metrics: StreamMetrics,
        stop: threading.Event,
        future_margin: timedelta = FUTURE_MARGIN,
    ) -> None:
        self.future_margin = future_margin
        self.settings = settings
        self.holder = holder
        self.sink = sink
        self.output = output
        self.metrics = metrics
        self.stop = stop

    def warm_up(self) -> None:
        """Open the PostgreSQL session and the producer now, not in the first batch (which would
        otherwise pay connection set-up, the temp table and the idempotent producer id)."""
        from personas.errors import PersonaError

        try:
            self.sink.warm_up()
        except PersonaError as exc:
            log.warning("PostgreSQL not ready at start (%s); the first batch will wait for it", exc)
        self.output.warm_up()

    def process(self, records: list[RawRecord]) -> BatchOutput:
        """Label and make durable; raises ``Stopping`` if the worker stops before it is durable."""
        return self.make_durable(self.prepare(records))

    def prepare(self, records: list[RawRecord]) -> Prepared:
        """Label a batch (CPU only: nothing leaves the process). The batch engine does this for
        batch N+1 while batch N is written (``make_durable`` on another thread)."""
        started = time.perf_counter()
        model = self.holder.current  # read once: the whole batch is labelled by this version
        out = label_batch(records, model, future_margin=self.future_margin)
        return Prepared(out, started)

    def make_durable(self, prepared: Prepared) -> BatchOutput:
        """Commit the rows in PostgreSQL, *then* publish labels and dead letters and wait for the
        broker's acks: a label on the topic always has its row committed (docs/stream_app.md,
        "What a consumer sees"). Raises ``Stopping`` if the worker stops before it is durable."""
        return self.publish(prepared, self.commit_rows(prepared))

    def commit_rows(self, prepared: Prepared) -> Committed:
        """The PostgreSQL half of ``make_durable``: the batch's rows, committed (retried while
        PostgreSQL is away; ``Stopping`` if the worker stops first)."""
        pg_retries = self.sink.retries
        inserted = self.sink.write(prepared.out.rows)
        conflicts = self.sink.last_conflicts
        if conflicts:
            self.metrics.event_id_conflicts.inc(len(conflicts))
            log.warning(
                "%d event(s) arrived with an event_id already stored with another payload; the "
                "first label is kept: %s",
                len(conflicts),
                ", ".join(conflicts[:10]) + (" …" if len(conflicts) > 10 else ""),
            )
        return Committed(inserted, self.sink.retries - pg_retries)

    def publish(self, prepared: Prepared, committed: Committed) -> BatchOutput:
        """The Kafka half, only ever after ``commit_rows`` of the same batch returned: labels and
        dead letters produced and acknowledged (the whole batch re-sent until it is)."""
        out = prepared.out
        topics = self.settings.topics
        batches: list[tuple[str, Sequence[Message]]] = [
            (topics.labels, out.labels),
            (topics.dlq, out.dead_letters),
        ]
        for topic, messages in batches:
            self.output.produce(topic, messages)
        try:
            self.output.confirm()
        except OutputFailed as exc:
            log.warning("re-sending batch after Kafka failure: %s", exc)
            self.metrics.retries.labels(target="kafka").inc()
            self.output.reset()
            self.output.send_all(batches)
        self._observe(out, committed.inserted, prepared.started, committed.pg_retries)
        return out

    def _observe(self, out: BatchOutput, inserted: int, started: float, pg_retries: int) -> None:
        m = self.metrics
        m.events_in.inc(out.n_in)
        m.labelled.inc(len(out.labels))
        for kind, count in out.error_kinds.items():
            m.dead_lettered.labels(kind=kind).inc(count)
        m.rows_inserted.inc(inserted)
        m.rows_duplicate.inc(len(out.rows) - inserted)
        if pg_retries:
            m.retries.labels(target="postgres").inc(pg_retries)
        m.batch_size.observe(out.n_in)
        m.batch_seconds.observe(time.perf_counter() - started)
        if out.event_timestamps_ms:
            now_ms = time.time() * 1000.0
            stamps = np.asarray(out.event_timestamps_ms, dtype=np.float64)
            m.latency.observe_many(np.maximum(now_ms - stamps, 0.0) / 1000.0)
