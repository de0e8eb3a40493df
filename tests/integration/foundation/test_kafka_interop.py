"""The pinned broker (PERSONA_KAFKA_VERSION) speaks to both clients we use: confluent-kafka
(producer, tools) and aiokafka (under Faust), in both directions, with keys and timestamps."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from personas.kafka import admin_config, aiokafka_options, consumer_config, producer_config
from personas.settings import Settings

N = 50


def _confluent_consume(settings: Settings, topic: str, n: int) -> list[tuple[bytes, bytes, int]]:
    consumer = Consumer(consumer_config(settings, f"g-{topic}"))
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes, int]] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got.append((msg.key(), msg.value(), msg.timestamp()[1]))
    finally:
        consumer.close()
    return got


def test_confluent_to_aiokafka(stack_settings: Settings, topic_factory):
    from aiokafka import AIOKafkaConsumer

    topic = topic_factory("interop-c2a", partitions=2)
    base_ts = 1_735_689_600_000  # 2025-01-01: old timestamps must be accepted (replays)
    producer = Producer(producer_config(stack_settings))
    for i in range(N):
        producer.produce(topic, key=f"k{i}", value=f"v{i}", timestamp=base_ts + i)
    assert producer.flush(15) == 0

    async def consume() -> list[tuple[bytes, bytes, int]]:
        consumer = AIOKafkaConsumer(
            topic,
            **aiokafka_options(stack_settings),
            group_id=f"g-{topic}",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        got: list[tuple[bytes, bytes, int]] = []
        try:
            deadline = time.monotonic() + 30
            while len(got) < N and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    got += [(m.key, m.value, m.timestamp) for m in messages]
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(consume())
    assert sorted(got) == sorted(
        (f"k{i}".encode(), f"v{i}".encode(), base_ts + i) for i in range(N)
    )


def test_aiokafka_to_confluent(stack_settings: Settings, topic_factory):
    from aiokafka import AIOKafkaProducer

    topic = topic_factory("interop-a2c", partitions=2)

    async def produce() -> None:
        producer = AIOKafkaProducer(**aiokafka_options(stack_settings))
        await producer.start()
        try:
            for i in range(N):
                await producer.send(
                    topic,
                    key=f"k{i}".encode(),
                    value=f"v{i}".encode(),
                    timestamp_ms=1_735_689_600_000 + i,
                )
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    got = _confluent_consume(stack_settings, topic, N)
    assert sorted(got) == sorted(
        (f"k{i}".encode(), f"v{i}".encode(), 1_735_689_600_000 + i) for i in range(N)
    )


def test_broker_is_the_pinned_version(stack_settings: Settings):
    from confluent_kafka.admin import AdminClient

    # The broker's API versions are not exposed by confluent-kafka; the running jar is.
    from infra.stack.kafka import KafkaService
    from infra.stack.layout import Layout

    service = KafkaService(stack_settings, Layout.from_settings(stack_settings))
    pid = service.pid()
    assert pid is not None, "the stack's Kafka is not the one answering"
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert f"kafka-{stack_settings.kafka_version}" in cmd
    assert AdminClient(admin_config(stack_settings)).list_topics(timeout=5)
