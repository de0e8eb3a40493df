"""Kafka plumbing shared by the services: client configs, topic creation, health check.

Producer defaults favour throughput with safety: idempotent, acks=all, lz4, 20 ms linger and
large batches (one network round trip per batch, never per event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from personas.errors import ServiceUnavailable
from personas.settings import Settings

__all__ = [
    "TopicSpec",
    "check_kafka",
    "consumer_config",
    "ensure_topics",
    "producer_config",
    "topic_specs",
]

#: Topics that replays write to keep records whatever their timestamp: time-based retention
#: looks at record timestamps, so a month-old replay would be deleted at the next check.
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": str(2 * 1024**3)}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics of DESIGN.md with explicit partition counts and configs."""
    t = settings.topics
    n = settings.kafka_partitions
    return [
        TopicSpec(t.responses, n, dict(KEEP_FOREVER)),
        TopicSpec(t.labels, n, dict(KEEP_FOREVER)),
        TopicSpec(t.dlq, 1, dict(KEEP_FOREVER)),
        TopicSpec(t.alerts, 1, dict(KEEP_FOREVER)),
        TopicSpec(t.retrain, 1, dict(KEEP_FOREVER)),
        # Compacted: the latest update per model survives; every worker reads it without a group.
        TopicSpec(t.model_updates, 1, {"cleanup.policy": "compact", "retention.ms": "-1"}),
    ]


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 500_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }
    config.update(overrides)
    return config


def consumer_config(settings: Settings, group_id: str | None, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    if group_id is not None:
        config["group.id"] = group_id
    config.update(overrides)
    return config


def check_kafka(settings: Settings, timeout: float = 5.0) -> None:
    """Raise ServiceUnavailable naming the broker if it does not answer a metadata request."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # log_level 0: a dead broker is reported once, by us, not by librdkafka every 50 ms.
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ServiceUnavailable(
            "Kafka", settings.kafka_bootstrap, str(exc.args[0]), "is the stack up? `make up`"
        ) from None


def ensure_topics(
    settings: Settings, specs: list[TopicSpec] | None = None, timeout: float = 15.0
) -> list[str]:
    """Create missing topics (idempotent); returns the names created."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    check_kafka(settings, timeout=timeout)
    specs = topic_specs(settings) if specs is None else specs
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    new = [NewTopic(s.name, s.partitions, 1, config=s.config) for s in specs]
    created = []
    for name, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ServiceUnavailable("Kafka", settings.kafka_bootstrap, str(exc)) from None
    return created
