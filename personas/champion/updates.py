"""Listen to the model-updates topic and say "look now" when our model's champion alias moved.

Every worker of every service must see every update, so this consumer joins no group: it assigns
itself every partition of the topic at the end offsets it reads when it starts (a private,
never-committed group id is there only because librdkafka insists on one; its prefix is the
service's ACL prefix). Offsets read explicitly rather than ``OFFSET_END``: once ``assigned`` is
set, every message published afterwards is seen, which is what a worker's readiness promises.

The message is a hint, not the truth: ``on_update`` only wakes the follower, which asks the
registry where the alias points now (see ``follower.ChampionFollower``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from personas.schemas import ModelUpdated
from personas.settings import Settings

__all__ = ["UpdateListener", "is_update_for"]

log = logging.getLogger(__name__)

#: Seconds between attempts to position on the topic while Kafka or the topic is not there yet.
POSITION_RETRY_S = 2.0


def is_update_for(raw: bytes | None, settings: Settings) -> bool:
    """True when ``raw`` is a ModelUpdated of ``settings.model_name``'s champion alias; other
    models, other aliases (a challenger) and unreadable messages are ignored."""
    if not raw:
        return False
    try:
        update = ModelUpdated.model_validate_json(raw)
    except ValidationError as exc:
        log.warning("ignoring unreadable model-updates message: %s", str(exc).splitlines()[0])
        return False
    if update.model_name != settings.model_name:
        return False
    if update.alias != settings.champion_alias:
        log.info("ignoring update of alias %s (version %s)", update.alias, update.version)
        return False
    return True


class UpdateListener(threading.Thread):
    """A daemon thread calling ``on_update()`` for each ModelUpdated of our champion."""

    def __init__(
        self,
        settings: Settings,
        on_update: Callable[[], None],
        stop: threading.Event,
        *,
        group_prefix: str,
        poll_s: float = 0.5,
    ) -> None:
        super().__init__(name="model-updates-listener", daemon=True)
        self.settings = settings
        self.on_update = on_update
        self.group_prefix = group_prefix
        self.poll_s = poll_s
        self._stopping = stop
        #: Set once positioned on the topic: every update published after this is seen.
        self.assigned = threading.Event()

    def run(self) -> None:
        from confluent_kafka import Consumer

        from personas.kafka import consumer_config

        def quiet(err: Any) -> None:  # the broker being away is normal; polling covers for it
            log.debug("model-updates consumer: %s", err)

        consumer = Consumer(
            consumer_config(
                self.settings,
                f"{self.group_prefix}-{uuid.uuid4().hex}",
                error_cb=quiet,
                logger=log,
                **{"enable.partition.eof": False},
            )
        )
        try:
            offsets = self._position(consumer)
            if offsets is None:
                return  # stopped before the topic answered: never positioned, nothing to follow
            self.assigned.set()
            log.info(
                "following %s from offsets %s (outside any consumer group)",
                self.settings.topics.model_updates,
                offsets,
            )
            # An update published while this process loaded its first model and had not yet
            # positioned itself would otherwise wait for the next registry poll.
            self.on_update()
            while not self._stopping.is_set():
                message = consumer.poll(self.poll_s)
                if message is None or message.error() is not None:
                    continue
                if is_update_for(message.value(), self.settings):
                    log.info(
                        "model-updates: %s moved, checking the alias", self.settings.model_name
                    )
                    self.on_update()
        finally:
            consumer.close()

    def _position(self, consumer: Any) -> dict[int, int] | None:
        """Assign every partition at its end offset now; None if stopped before that worked."""
        from confluent_kafka import KafkaException, TopicPartition

        topic = self.settings.topics.model_updates
        warned = False
        while not self._stopping.is_set():
            try:
                partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
                if not partitions:
                    raise KafkaException(f"topic {topic} has no partitions (yet)")
                ends = {
                    p: consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=5, cached=False
                    )[1]
                    for p in sorted(partitions)
                }
            except KafkaException as exc:
                (log.debug if warned else log.warning)("waiting for topic %s: %s", topic, exc)
                warned = True
                self._stopping.wait(POSITION_RETRY_S)
                continue
            consumer.assign([TopicPartition(topic, p, offset) for p, offset in ends.items()])
            return ends
        return None
