"""`persona trainer` loop: queued commands are all handled in order, offsets committed after."""

from __future__ import annotations

import threading
import urllib.request
import uuid
from datetime import timedelta

import numpy as np
from confluent_kafka import Consumer, Producer, TopicPartition
from trainer_helpers import FEB, blobs, command, insert_labels, read_all

from infra.stack.process import free_port
from personas import registry
from personas.catalogue import Catalogue
from personas.kafka import consumer_config, producer_config
from personas.model import CentroidModel
from personas.schemas import RetrainCommand
from personas.settings import Settings
from trainer.bootstrap import bootstrap
from trainer.events import Publisher
from trainer.metrics import TrainerMetrics
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
    ts = trainer_settings.model_copy(
        update={"group_id": f"trainer-{uuid.uuid4().hex[:8]}", "metrics_port": free_port()}
    )
    bootstrap(s, trainer_settings=ts)
    shift = np.zeros((3, 10))
    shift[1, 3:6] = 1.5
    for week in range(2):
        x, _ = blobs(catalogue.centroids + shift, 200, 2.0, seed=30 + week)
        insert_labels(s, vendor_model, x, FEB + week * WEEK, WEEK)

    # Four messages wait in the topic before the trainer starts: week 1, a duplicate of it, a
    # message that is not a command, and week 2 requested before week 1's model existed (stale:
    # its evidence was measured against version 1). A week-2 command sent after version 2 was
    # promoted is trained.
    first = command(FEB, FEB + WEEK)
    early_second = command(FEB + WEEK, FEB + 2 * WEEK)
    with Publisher(s) as pub:
        pub.publish(s.topics.retrain, None, first)
        pub.publish(s.topics.retrain, None, command(FEB, FEB + WEEK, "duplicate"))
    producer = Producer(producer_config(s))
    producer.produce(s.topics.retrain, b'{"not": "a command"}')
    assert producer.flush(10) == 0
    with Publisher(s) as pub:
        pub.publish(s.topics.retrain, None, early_second)

    outcomes: list[Outcome] = []
    later: list[RetrainCommand] = []

    scraped: list[str] = []

    def on_outcome(outcome: Outcome) -> None:
        outcomes.append(outcome)
        url = f"http://127.0.0.1:{ts.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:  # served while the loop runs
            scraped.append(resp.read().decode())
        if outcome.status == "promoted" and outcome.version == 2:
            later.append(command(FEB + WEEK, FEB + 2 * WEEK, "still drifting"))
            with Publisher(s) as pub:
                pub.publish(s.topics.retrain, None, later[0])

    metrics = TrainerMetrics()
    handled = run_trainer(
        s,
        ts,
        stop=threading.Event(),
        max_commands=5,
        poll_timeout=0.5,
        on_outcome=on_outcome,
        metrics=metrics,
    )

    assert handled == 5
    assert [(o.command_id, o.status, o.version) for o in outcomes] == [
        (first.command_id, "promoted", 2),
        (outcomes[1].command_id, "duplicate", None),
        (early_second.command_id, "stale", None),
        (later[0].command_id, "promoted", 3),
    ]
    assert registry.champion_version(s) == 3
    updates = [v for _, v in read_all(s, s.topics.model_updates)]
    assert [(u["version"], u["previous_version"]) for u in updates] == [(1, None), (2, 1), (3, 2)]
    alerts = [v for _, v in read_all(s, s.topics.alerts)]
    assert [a["kind"] for a in alerts] == ["retrain_failed"]
    assert "unusable retrain command at offset 2" in alerts[0]["message"]

    consumer = Consumer(consumer_config(s, ts.group_id))
    try:
        committed = consumer.committed([TopicPartition(s.topics.retrain, 0)], timeout=10)
    finally:
        consumer.close()
    assert committed[0].offset == 5

    # One count per command, by outcome; the endpoint served them while the loop ran.
    commands = {
        sample.labels["outcome"]: sample.value
        for family in metrics.registry.collect()
        if family.name == "persona_trainer_commands"
        for sample in family.samples
        if sample.name.endswith("_total")
    }
    assert {k: v for k, v in commands.items() if v} == {
        "promoted": 2, "duplicate": 1, "stale": 1, "invalid_command": 1,
    }  # fmt: skip
    assert metrics.registry.get_sample_value("persona_trainer_fit_seconds_count") == 2
    assert metrics.registry.get_sample_value("persona_trainer_champion_version") == 3
    assert 'persona_trainer_commands_total{outcome="promoted"} 1.0' in scraped[0]
