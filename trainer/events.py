"""Publishing the trainer's events (ModelUpdated, TrainerAlert) to Kafka, durably.

Each publish waits for the broker's acknowledgement (acks=all, idempotent producer): the trainer
publishes a handful of events per retrain, so latency does not matter, but a ModelUpdated that is
lost would leave every worker on the old model until it polls the registry.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from personas.errors import ServiceUnavailable
from personas.kafka import producer_config
from personas.settings import Settings

__all__ = ["Publisher"]

log = logging.getLogger(__name__)


class Publisher:
    """A small synchronous wrapper over confluent_kafka.Producer."""

    def __init__(self, settings: Settings, timeout: float = 15.0) -> None:
        from confluent_kafka import Producer

        self._settings = settings
        self._timeout = timeout
        self._producer: Any = Producer(producer_config(settings, **{"linger.ms": 0}))

    def publish(self, topic: str, key: str | None, event: BaseModel) -> None:
        """Send one event and wait until the broker has it; ServiceUnavailable otherwise."""
        errors: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        self._producer.produce(
            topic,
            key=None if key is None else key.encode(),
            value=event.model_dump_json().encode(),
            on_delivery=on_delivery,
        )
        remaining = self._producer.flush(self._timeout)
        if remaining or errors:
            reason = errors[0] if errors else f"{remaining} message(s) not delivered in time"
            raise ServiceUnavailable("Kafka", self._settings.kafka_bootstrap, reason)
        log.info("published %s to %s", type(event).__name__, topic)

    def close(self) -> None:
        self._producer.flush(self._timeout)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
