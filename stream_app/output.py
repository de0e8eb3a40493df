"""Kafka output of a batch (labels + dead letters), confirmed by the broker before we go on.

librdkafka (confluent-kafka) batches, compresses and retries in C; ``flush`` returns when every
message of the batch is acknowledged (acks=all, idempotent producer), and delivery errors are
collected per batch so the caller can re-send the whole batch (duplicates on the labels topic are
allowed, loss is not).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from personas.kafka import producer_config
from personas.settings import Settings
from stream_app.sink import Backoff

__all__ = ["KafkaOutput", "OutputFailed"]

log = logging.getLogger(__name__)


class OutputFailed(Exception):
    """Some messages of a batch were not acknowledged by the broker."""


class KafkaOutput:
    def __init__(
        self,
        settings: Settings,
        stop: threading.Event,
        *,
        linger_ms: int = 2,
        flush_timeout: float = 30.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.settings = settings
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
                self.settings, **{"linger.ms": self.linger_ms, "client.id": "persona-stream"}
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

    def produce(self, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Queue messages (non-blocking unless the local queue is full)."""
        producer = self.producer
        produce = producer.produce
        on_delivery = self._on_delivery
        for key, value in messages:
            while True:
                try:
                    produce(topic, value, key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)

    def confirm(self) -> None:
        """Wait until everything queued is acknowledged; raise OutputFailed otherwise."""
        remaining = self.producer.flush(self.flush_timeout)
        errors, self._errors = self._errors, []
        if remaining or errors:
            detail = errors[0] if errors else f"{remaining} messages unconfirmed after flush"
            raise OutputFailed(f"{len(errors) or remaining} messages failed: {detail}")

    def send_all(self, batches: Sequence[tuple[str, Sequence[tuple[bytes | None, bytes]]]]) -> None:
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
