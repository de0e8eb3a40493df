"""The demo's clean slate touches only the demo's own names: a user's topics, tables and
registered model on the same stack survive `persona demo`'s reset."""

from __future__ import annotations

import contextlib

from rich.console import Console

from infra.demo.runner import demo_settings, reset_state
from personas import db, registry
from personas.kafka import admin_config, producer_config, topic_specs
from personas.settings import Settings


def _count(settings: Settings, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    from personas.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, "persona-test-count"))
    try:
        total = 0
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def test_the_demo_reset_leaves_the_users_data_alone(
    isolated_settings: Settings, unique: str
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient
    from mlflow.exceptions import MlflowException

    user = isolated_settings  # stands for the user's own names on this stack
    producer = Producer(producer_config(user))
    producer.produce(user.topics.labels, b'{"mine": true}', b"k")
    producer.produce(user.topics.responses, b'{"mine": true}', b"k")
    assert producer.flush(30) == 0
    with db.connect(user) as conn:
        conn.execute("CREATE TABLE users_own (x int)")
        conn.execute("INSERT INTO users_own VALUES (1)")
        conn.commit()
    registry.client(user).create_registered_model(user.model_name)

    demo = demo_settings(user, f"demo_{unique}")
    try:
        reset_state(demo, Console(quiet=True))  # creates the demo's names
        reset_state(demo, Console(quiet=True))  # and empties them again
        assert _count(user, user.topics.labels) == 1
        assert _count(user, user.topics.responses) == 1
        with db.connect(user, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM users_own").fetchone() == (1,)
        assert registry.client(user).get_registered_model(user.model_name).name == user.model_name
        assert {s.name for s in topic_specs(demo)}.isdisjoint({s.name for s in topic_specs(user)})
    finally:
        admin = AdminClient(admin_config(demo))
        for future in admin.delete_topics([s.name for s in topic_specs(demo)]).values():
            with contextlib.suppress(Exception):
                future.result(timeout=30)
        with db.connect(demo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{demo.pg_schema}" CASCADE')
        with contextlib.suppress(MlflowException):
            registry.client(demo).delete_registered_model(demo.model_name)
