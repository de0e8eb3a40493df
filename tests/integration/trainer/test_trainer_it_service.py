"""`persona trainer` loop: queued commands are all handled in order, offsets committed after."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import numpy as np
from confluent_kafka import Consumer, TopicPartition
from trainer_helpers import FEB, blobs, command, insert_labels, read_all

from personas import registry
from personas.catalogue import Catalogue
from personas.model import CentroidModel
from personas.settings import Settings
from trainer.bootstrap import bootstrap
from trainer.events import Publisher
from trainer.retrain import Outcome
from trainer.service import run_trainer
from trainer.settings import TrainerSettings

WEEK = timedelta(days=7)


def test_trainer_consumes_queued_commands_and_commits(
    isolated_settings: Settings,
    trainer_settings: TrainerSettings,
    catalogue: Catalogue,
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    ts = trainer_settings.model_copy(update={"group_id": f"trainer-{uuid.uuid4().hex[:8]}"})
    bootstrap(s, trainer_settings=ts)
    shift = np.zeros((3, 10))
    shift[1, 3:6] = 1.5
    for week in range(2):
        x, _ = blobs(catalogue.centroids + shift, 200, 2.0, seed=30 + week)
        insert_labels(s, vendor_model, x, FEB + week * WEEK, WEEK)

    # Four commands wait in the topic before the trainer starts: week 1, a duplicate of it,
    # a message that is not a command, and week 2 (which must still be handled after the others).
    first, second = command(FEB, FEB + WEEK), command(FEB + WEEK, FEB + 2 * WEEK)
    with Publisher(s) as pub:
        pub.publish(s.topics.retrain, None, first)
        pub.publish(s.topics.retrain, None, command(FEB, FEB + WEEK, "duplicate"))
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": s.kafka_bootstrap})
    producer.produce(s.topics.retrain, b'{"not": "a command"}')
    assert producer.flush(10) == 0
    with Publisher(s) as pub:
        pub.publish(s.topics.retrain, None, second)

    outcomes: list[Outcome] = []
    handled = run_trainer(
        s,
        ts,
        stop=threading.Event(),
        max_commands=4,
        poll_timeout=0.5,
        on_outcome=outcomes.append,
    )

    assert handled == 4
    assert [(o.status, o.version) for o in outcomes] == [
        ("promoted", 2),
        ("duplicate", None),
        ("promoted", 3),
    ]
    assert outcomes[0].command_id == first.command_id
    assert outcomes[2].command_id == second.command_id
    assert registry.champion_version(s) == 3
    updates = [v for _, v in read_all(s, s.topics.model_updates)]
    assert [(u["version"], u["previous_version"]) for u in updates] == [(1, None), (2, 1), (3, 2)]
    alerts = [v for _, v in read_all(s, s.topics.alerts)]
    assert [a["kind"] for a in alerts] == ["retrain_failed"]
    assert "unusable retrain command at offset 2" in alerts[0]["message"]

    consumer = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": ts.group_id})
    try:
        committed = consumer.committed([TopicPartition(s.topics.retrain, 0)], timeout=10)
    finally:
        consumer.close()
    assert committed[0].offset == 4
