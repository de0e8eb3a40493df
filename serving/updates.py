"""Listen to the model-updates topic and wake the model holder when our model's alias moved.

Every worker must see every update, so this consumer uses no consumer group coordination: it
assigns itself every partition from the end (a private, never-committed group id is only there
because librdkafka insists on one). The message is a hint, not the truth: the holder then asks the
registry where the alias points, so a lost or early message costs at most one poll interval.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from personas.kafka import consumer_config
from personas.schemas import ModelUpdated
from personas.settings import Settings

if TYPE_CHECKING:
    from serving.model_holder import ModelHolder

__all__ = ["is_update_for", "start_update_listener"]

log = logging.getLogger(__name__)


def is_update_for(raw: bytes | None, model_name: str) -> bool:
    """True when ``raw`` is a ModelUpdated about ``model_name`` (anything else is ignored)."""
    if not raw:
        return False
    try:
        update = ModelUpdated.model_validate_json(raw)
    except ValidationError:
        log.warning("ignoring a malformed model-updates message")
        return False
    return update.model_name == model_name


def start_update_listener(settings: Settings, holder: ModelHolder) -> threading.Thread:
    thread = threading.Thread(
        target=_run, args=(settings, holder), name="model-updates-listener", daemon=True
    )
    thread.start()
    return thread


def _run(settings: Settings, holder: ModelHolder) -> None:
    from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

    def quiet(err: Any) -> None:  # the broker being away is normal; polling covers for it
        log.debug("model-updates consumer: %s", err)

    config = consumer_config(
        settings,
        f"persona-serve-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        error_cb=quiet,
        logger=log,
    )
    consumer = Consumer(config)
    topic = settings.topics.model_updates
    try:
        while not holder.stopping:
            try:
                metadata = consumer.list_topics(topic, timeout=5)
                partitions = metadata.topics[topic].partitions
            except KafkaException:
                partitions = {}
            if partitions:
                consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
                break
            holder.sleep(holder.poll_interval_s)
        while not holder.stopping:
            message = consumer.poll(1.0)
            if message is None or message.error():
                continue
            if is_update_for(message.value(), settings.model_name):
                log.info("model-updates: %s changed, checking the alias", settings.model_name)
                holder.wake()
    finally:
        consumer.close()
