"""Kafka output of a batch (labels + dead letters), confirmed by the broker before we go on.

librdkafka (confluent-kafka) batches, compresses and retries in C; ``flush`` returns when every
message of the batch is acknowledged (acks=all, idempotent producer), and delivery errors are
collected per batch so the caller can re-send the whole batch (duplicates on the labels topic are
allowed, loss is not).

One exception, so that one record can never stop the stream: a message to a *droppable* topic
(the DLQ) that the broker refuses for good (too large, not authorised, invalid) is given up —
logged with where its record came from and counted — instead of being re-sent forever: its
original is still at that offset of the input topic. Transient failures (a broker away) are
re-sent like everything else.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from personas.kafka import DLQ_RECORD_LIMIT, produce_waiting, producer_config
from personas.settings import Settings
from stream_app.backoff import Backoff

__all__ = ["KafkaOutput", "OutputFailed"]

log = logging.getLogger(__name__)


class OutputFailed(Exception):
    """Some messages of a batch were not acknowledged by the broker."""


#: (key, value) or (key, value, headers)
Message = tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, Any]
#: Called with (topic, headers, why) for a message given up for good.
OnDropped = Callable[[str, Any, str], None]

#: librdkafka's request size limit for our producer: a dead letter of a record at the broker's
#: limit, plus its headers, must pass (librdkafka's own default, 1,000,000, would refuse it).
PRODUCER_MAX_BYTES = 2 * DLQ_RECORD_LIMIT


class KafkaOutput:
    def __init__(
        self,
        settings: Settings,
        stop: threading.Event,
        *,
        linger_ms: int = 2,
        flush_timeout: float = 30.0,
        max_backoff: float = 30.0,
        droppable: frozenset[str] = frozenset(),
        on_dropped: OnDropped | None = None,
    ) -> None:
        self.settings = settings
        self.droppable = droppable
        self.on_dropped = on_dropped
        self.stop = stop
        self.linger_ms = linger_ms
        self.flush_timeout = flush_timeout
        self.max_backoff = max_backoff
        self._errors: list[str] = []
        self._producer: Any = None
        self.retries = 0

    def _make_producer(self) -> Any:
        from confluent_kafka import Producer

        return Producer(
            producer_config(
                self.settings,
                **{
                    "linger.ms": self.linger_ms,
                    "client.id": "persona-stream",
                    "message.max.bytes": PRODUCER_MAX_BYTES,
                    # Delivery callbacks only for failures: our callbacks only look at errors,
                    # and a Python call per acknowledged message is per-event work on the hot
                    # path; ``flush`` still waits for every message (its count says what is left).
                    "delivery.report.only.error": True,
                },
            )
        )

    @property
    def producer(self) -> Any:
        if self._producer is None:
            self._producer = self._make_producer()
        return self._producer

    def warm_up(self, timeout: float = 10.0) -> None:
        """Create the producer and reach the broker before the first batch needs it."""
        self.producer.list_topics(timeout=timeout)
        self.producer.poll(0)

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def _on_droppable_delivery(self, topic: str, headers: Any, err: Any, _msg: Any) -> None:
        # Delivery reports carry no headers: the message's own are bound here.
        if err is None:
            return
        if _permanent(err):
            self._drop(topic, headers, str(err))
        else:
            self._errors.append(str(err))

    def _drop(self, topic: str, headers: Any, why: str) -> None:
        if self.on_dropped is not None:
            self.on_dropped(topic, headers, why)
        else:
            log.error("gave up a message to %s for good: %s", topic, why)

    def produce(self, topic: str, messages: Sequence[Message]) -> None:
        """Queue messages (non-blocking unless the local queue is full)."""
        from confluent_kafka import KafkaException

        producer = self.producer
        produce = producer.produce
        on_delivery = self._on_delivery
        droppable = topic in self.droppable
        # A batch is all (key, value) (labels) or all (key, value, headers) (dead letters):
        # decided once per batch, not per message, on the labels' hot path.
        with_headers = bool(messages) and len(messages[0]) > 2
        for message in messages:
            key, value = message[0], message[1]
            headers = message[2] if with_headers else None  # type: ignore[misc]
            callback = (
                functools.partial(self._on_droppable_delivery, topic, headers)
                if droppable
                else on_delivery
            )
            try:
                try:
                    produce(topic, value, key, headers=headers, on_delivery=callback)
                except BufferError:  # local queue full
                    produce_waiting(
                        producer, topic, value, key, headers=headers, on_delivery=callback
                    )
            except KafkaException as exc:  # refused locally, e.g. larger than the limit
                if not (droppable and _permanent(exc.args[0])):
                    raise
                self._drop(topic, headers, str(exc.args[0]))

    def confirm(self) -> None:
        """Wait until everything queued is acknowledged; raise OutputFailed otherwise."""
        remaining = self.producer.flush(self.flush_timeout)
        errors, self._errors = self._errors, []
        if remaining or errors:
            detail = errors[0] if errors else f"{remaining} messages unconfirmed after flush"
            raise OutputFailed(f"{len(errors) or remaining} messages failed: {detail}")

    def send_all(self, batches: Sequence[tuple[str, Sequence[Message]]]) -> None:
        """Produce and confirm, retrying the whole set with backoff until it is acknowledged."""
        backoff = Backoff(self.stop, longest=self.max_backoff)
        while True:
            try:
                for topic, messages in batches:
                    self.produce(topic, messages)
                self.confirm()
                return
            except OutputFailed as exc:
                self.retries += 1
                log.warning(
                    "waiting for Kafka at %s to acknowledge a batch: %s (attempt %d, retry in %.1fs)",
                    self.settings.kafka_bootstrap,
                    exc,
                    backoff.attempt + 1,
                    backoff.next_delay(),
                )
                self.reset()
                backoff.wait()

    def reset(self) -> None:
        """Drop the producer after a failure (an idempotent producer may be fenced for good)."""
        if self._producer is not None:
            self._producer.purge()
            self._producer.flush(0)
            self._producer = None
            self._errors = []

    def close(self, timeout: float = 10.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)
            self._producer = None

    def __enter__(self) -> KafkaOutput:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _permanent(err: Any) -> bool:
    """A refusal that re-sending cannot change (too large, not authorised, invalid record)."""
    from confluent_kafka import KafkaError

    if err.fatal():
        return False  # the producer itself is dead: handled by reset and re-send
    return err.code() in {
        KafkaError.MSG_SIZE_TOO_LARGE,  # by the broker, or by librdkafka before sending
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_MSG,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_EXCEPTION,
        KafkaError._INVALID_ARG,
    }
