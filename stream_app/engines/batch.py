"""The batch engine's consume loop: librdkafka fetches, one thread labels and commits, batch by batch.

Why it exists beside the Faust agent: faust-streaming 0.15.3 hands every message through its own
asyncio machinery (``Consumer._drain_messages`` → conductor → channel → stream: about four tasks
per message). Measured on our 2-core machines, a Faust agent that does *nothing* drains only a
quarter of what a bare confluent-kafka loop labels (docs/benchmarks/stream_app.md), so no agent can
reach the throughput target. Here librdkafka fetches and decompresses in C threads, ``consume``
returns up to ``max_batch`` records in one call, and the per-event Python work is only ours.

Three batches overlap, in a pipeline of three threads: this thread does ``consume`` →
``BatchProcessor.prepare`` (label: CPU) of batch N+2 while the rows writer runs
``BatchProcessor.commit_rows`` of batch N+1 (the PostgreSQL transaction) and the labels writer
``BatchProcessor.publish`` of batch N (labels and dead letters produced and acknowledged by Kafka),
which starts only once batch N's rows are committed. The writers mostly wait on PostgreSQL and the
broker, with the GIL released. Each writer is one thread and takes batches in reading order, so
rows, labels and offsets all follow the input's order. At most ``IN_FLIGHT`` batches are handed
to the writers; before another one, this thread waits for the oldest to be durable, and only then
remembers its next offsets and commits them (async, at most every ``commit_interval``;
synchronously when partitions are revoked and at shutdown). The checkpoint is only touched here:
nothing is committed that is not durable. When ``consume`` returns nothing, the batches in flight
are waited for at once (nothing to overlap with). Rebalance callbacks run inside ``consume``; they
first wait for every batch in flight, so a revoked partition never has a batch in flight when it
is committed and handed on. A crash re-delivers at
most the batches since the last commit; the sink's ``ON CONFLICT DO NOTHING`` absorbs them.

Readiness, the lag gauge, crashing and the shutdown grace are the runtime's (``runtime.py``, shared
with the agent engine); this module only calls them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from personas.errors import Stopping
from stream_app.pipeline import Prepared
from stream_app.records import RawRecord
from stream_app.runtime import LAG_EVERY_SECONDS, Runtime

if TYPE_CHECKING:
    import faust

__all__ = ["BatchIngest", "attach"]

log = logging.getLogger(__name__)

ConsumerFactory = Callable[[dict[str, Any]], Any]

#: After the stop event interrupted a batch, how long to wait for the thread to give it up.
LET_GO_SECONDS = 10.0
#: Batches handed to the writers and not yet durable: one committing rows, one publishing labels.
IN_FLIGHT = 2


def _default_consumer(config: dict[str, Any]) -> Any:
    from confluent_kafka import Consumer

    return Consumer(config)


class BatchIngest(threading.Thread):
    """Consume, label, make durable, commit — until asked to stop or the worker stops.

    The runtime's ``Engine``: ``drain``, ``let_go`` and ``unfinished`` are what the shared
    shutdown asks of it."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        consumer_factory: ConsumerFactory = _default_consumer,
    ) -> None:
        super().__init__(name="batch-ingest", daemon=True)
        self.runtime = runtime
        self._consumer_factory = consumer_factory
        self._leave = threading.Event()  # finish the current batch, commit, leave the group
        self._last_lag = 0.0
        self._consumer: Any = None
        self._said_protocol = False
        self._writing = False  # a batch is taken, not yet durable
        self._rows_writer: ThreadPoolExecutor | None = None
        self._labels_writer: ThreadPoolExecutor | None = None
        #: batches handed to the writers, oldest first: (durable when done, its records)
        self._in_flight: deque[tuple[Future[Any], list[RawRecord]]] = deque()
        self.clean_exit = False

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Stop after the batch being written (if any) is durable and committed."""
        self._leave.set()

    def _running(self) -> bool:
        return not (self._leave.is_set() or self.runtime.stop_event.is_set())

    async def drain(self, grace: float) -> bool:
        if not self.is_alive():
            return True
        self.request_stop()
        await asyncio.to_thread(self.join, grace)
        return not self.is_alive()

    async def let_go(self) -> None:
        await asyncio.to_thread(self.join, LET_GO_SECONDS)

    def unfinished(self) -> str | None:
        return "in-flight batch not durable" if self._writing else None

    # ------------------------------------------------------------------ consumer

    def consumer_settings(self) -> dict[str, Any]:
        from personas.kafka import consumer_config

        stream = self.runtime.stream
        session_ms = int(stream.session_timeout * 1000)
        return consumer_config(
            self.runtime.settings,
            self.runtime.app_id,
            **{
                "enable.auto.commit": False,
                "session.timeout.ms": session_ms,
                "heartbeat.interval.ms": min(3000, session_ms // 3),
                # Bounded by how long one batch may take to become durable (PostgreSQL outages
                # are waited out inside process(); beyond this the group hands the partitions on).
                "max.poll.interval.ms": 600_000,
                "client.id": f"{self.runtime.app_id}-{stream.web_port}",
                "on_commit": self.runtime.checkpoint.on_commit,
            },
        )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.runtime.on_assigned(tp.partition for tp in partitions)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self._finish()  # the batches in flight may hold records of these partitions
        self.runtime.checkpoint.commit(consumer, only=revoked, asynchronous=False)
        self._forget(revoked)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        log.warning(
            "lost partitions %s (session expired); uncommitted work is re-delivered",
            [tp.partition for tp in partitions],
        )
        self._finish()  # durable anyway; its offsets are forgotten with the partitions
        self._forget({(tp.topic, tp.partition) for tp in partitions})

    def _forget(self, keys: set[tuple[str, int]]) -> None:
        """Partitions that are no longer ours: their offsets are the next owner's business."""
        self.runtime.on_revoked(keys)

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        try:
            self._loop()
            self.clean_exit = True
        except Stopping:
            log.info("stopping with a batch left uncommitted")
        except BaseException as exc:  # our bug or a fatal Kafka error: crash, commit nothing more
            self.runtime.fail(exc)
        finally:
            for writer in (self._rows_writer, self._labels_writer):
                if writer is not None:
                    writer.shutdown(wait=True)  # a write interrupted by the stop event ends
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                try:
                    consumer.close()  # leave the group now: the others take over at once
                except Exception as exc:  # pragma: no cover - best effort on the way out
                    log.warning("closing the consumer: %s", exc)

    def _loop(self) -> None:
        runtime = self.runtime
        stream = runtime.stream
        consumer = self._consumer_factory(self.consumer_settings())
        self._consumer = consumer
        consumer.subscribe(
            [runtime.settings.topics.responses],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        prepare = runtime.processor.prepare
        checkpoint = runtime.checkpoint
        self._rows_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-write-rows")
        self._labels_writer = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="batch-write-labels"
        )
        in_flight = self._in_flight
        max_batch, timeout = stream.max_batch, stream.batch_timeout
        while self._running():
            messages = consumer.consume(max_batch, timeout)
            records = self._records(messages)
            if records:
                prepared = prepare(records)  # overlaps with the writes of the batches in flight
                while len(in_flight) >= IN_FLIGHT:
                    self._finish_oldest()
                self._hand_over(prepared, records)
                while in_flight and in_flight[0][0].done():
                    self._finish_oldest()
            else:
                self._finish()  # nothing to overlap with: make them durable (and committable)
            if checkpoint.due():  # an attempt with nothing to send starts no interval
                checkpoint.commit(consumer, asynchronous=True)
            now = time.monotonic()
            if now - self._last_lag >= LAG_EVERY_SECONDS:
                self._last_lag = now
                runtime.update_lag(
                    consumer.assignment,
                    lambda tp: consumer.get_watermark_offsets(tp, cached=True)[1],
                )
        self._finish()
        checkpoint.commit(consumer, asynchronous=False)

    def _hand_over(self, prepared: Prepared, records: list[RawRecord]) -> None:
        """Queue a labelled batch on both writers: rows first, its labels after its rows."""
        assert self._rows_writer is not None and self._labels_writer is not None
        processor = self.runtime.processor
        committed = self._rows_writer.submit(processor.commit_rows, prepared)

        def publish() -> None:
            # never publish a label whose row is not committed: a failed commit_rows raises here
            processor.publish(prepared, committed.result())

        self._writing = True
        self._in_flight.append((self._labels_writer.submit(publish), records))

    def _finish_oldest(self) -> None:
        """Wait until the oldest batch in flight is durable, then count its records as done
        (their offsets may be committed). Raises what its write raised (``Stopping``, our bug):
        then it is never counted nor committed, and ``_writing`` stays set."""
        future, records = self._in_flight.popleft()
        try:
            future.result()
        except BaseException:
            self._in_flight.clear()  # later batches may be durable: never counted past this one
            raise
        self.runtime.note_done(records)
        if not self._in_flight:
            self._writing = False

    def _finish(self) -> None:
        """Wait for every batch in flight, in order."""
        while self._in_flight:
            self._finish_oldest()

    def _records(self, messages: list[Any]) -> list[RawRecord]:
        records: list[RawRecord] = []
        append = records.append
        # tuple.__new__ builds the same RawRecord in C: the NamedTuple's own __new__ is Python
        # code, 5 % of this thread at 80k events/s (docs/benchmarks/stream_app.md, "Profile").
        new = tuple.__new__
        for m in messages:
            err = m.error()
            if err is not None:
                self._consumer_error(err)
                continue
            kind, stamp = m.timestamp()
            append(
                new(
                    RawRecord,
                    (
                        m.key(),
                        m.value(),
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        stamp if kind else None,
                    ),
                )
            )
        return records

    def _consumer_error(self, err: Any) -> None:
        from confluent_kafka import KafkaError, KafkaException

        if err.fatal():
            raise KafkaException(err)
        if err.code() == KafkaError.INCONSISTENT_GROUP_PROTOCOL:
            # librdkafka keeps retrying the join: once the other members leave, this one gets in.
            if not self._said_protocol:
                self._said_protocol = True
                log.error(
                    "consumer group %s is held by workers that speak another group protocol "
                    "(persona stream --engine agent, i.e. Faust's consumer): this worker gets no "
                    "partitions until they stop. Stop them, or give this worker its own group "
                    "with --app-id (docs/stream_app.md, 'Two engines')",
                    self.runtime.app_id,
                )
            return
        log.warning("consumer: %s", err)


def attach(app: faust.App, runtime: Runtime) -> BatchIngest:
    """Run the consume loop inside the Faust worker: started with the app, drained by the
    runtime's shutdown.

    Faust keeps what it is good at here — the worker's lifecycle and signal handling, the web
    endpoint, timers — while the events bypass its per-message dispatch. Faust's own consumer and
    producer are not started: its consumer would join the labellers' group with a protocol of its
    own (docs/stream_app.md, 'Two engines').
    """
    from faust.app.base import BootStrategy

    app.boot_strategy = BootStrategy(app, enable_kafka=False)
    ingest = BatchIngest(runtime)
    runtime.engine = ingest

    @app.task  # type: ignore[untyped-decorator]
    async def start_ingest() -> None:
        ingest.start()

    return ingest
