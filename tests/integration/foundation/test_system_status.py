"""`persona status` reads the live system: a worker in the stream group with its partitions and
lag, the champion and since when, the last windows, dead letters of the last hour, open retrain
commands — and names a source that does not answer instead of failing."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, Producer, TopicPartition
from typer.testing import CliRunner

from infra.stack.process import free_port
from persona_cli import build_app
from personas import db
from personas.kafka import consumer_config, producer_config
from personas.settings import Settings, settings_env
from stream_app.settings import StreamSettings
from trainer.bootstrap import bootstrap
from trainer.settings import TrainerSettings


def test_status_shows_workers_lag_champion_windows_dead_letters_and_commands(
    isolated_settings: Settings,
) -> None:
    s = isolated_settings
    bootstrap(s, trainer_settings=TrainerSettings(_env_file=None))  # type: ignore[call-arg]
    producer = Producer(producer_config(s))
    for i in range(10):
        producer.produce(s.topics.responses, f"r{i}".encode(), partition=0)
    for i in range(2):
        producer.produce(s.topics.dlq, f"bad{i}".encode(), partition=0)
    assert producer.flush(15) == 0

    # A labeller in the stream's group that has committed the first 4 events of partition 0.
    group = StreamSettings(_env_file=None).resolved_app_id(s)  # type: ignore[call-arg]
    worker = Consumer(consumer_config(s, group, **{"client.id": "worker-under-test"}))
    worker.subscribe([s.topics.responses])
    deadline = time.monotonic() + 60
    while not worker.assignment() and time.monotonic() < deadline:
        worker.poll(0.5)
    assert worker.assignment(), "the test's consumer never joined its group"
    worker.commit(offsets=[TopicPartition(s.topics.responses, 0, 4)], asynchronous=False)

    start = datetime(2025, 3, 3, tzinfo=UTC)
    with db.connect(s, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO drift_reports (window_id, window_start, window_end, event_count, "
            "model_version, status) VALUES ('7d-x', %s, %s, 812, 1, 'drift')",
            (start, start + timedelta(days=7)),
        )
        conn.execute(
            "INSERT INTO trainer_commands (command_id, model_name, range_start, range_end, "
            "reason, requested_by, requested_at) VALUES (%s, %s, %s, %s, 'drift', 'monitor:m', %s)",
            (uuid.uuid4(), s.model_name, start, start + timedelta(days=7), datetime.now(UTC)),
        )

    env = {**settings_env(s), "PERSONA_SERVE_PORT": str(free_port())}  # no REST server there
    try:
        done = CliRunner().invoke(build_app(), ["status", "--json", "--timeout", "10"], env=env)
        text = CliRunner().invoke(build_app(), ["status"], env=env)
    finally:
        worker.close()
    assert done.exit_code == 0, done.output
    status = json.loads(done.output)

    (stream,) = [g for g in status["groups"] if g["service"] == "stream"]
    assert stream["up"] and stream["group_id"] == group
    (member,) = stream["members"]
    assert member["client_id"] == "worker-under-test" and 0 in member["partitions"]
    assert stream["lag"]["0"] == 6 and stream["total_lag"] == 6
    assert {g["service"]: g["up"] for g in status["groups"]} == {
        "stream": True, "monitor": False, "trainer": False,
    }  # fmt: skip
    assert status["champion"]["version"] == 1 and status["champion"]["since"] is not None
    assert [(w["window_id"], w["status"]) for w in status["windows"]] == [("7d-x", "drift")]
    assert [c["requested_by"] for c in status["open_commands"]] == ["monitor:m"]
    assert (status["responses_last_hour"], status["dead_letters_last_hour"]) == (10, 2)
    assert status["dlq_share_last_hour"] == 0.2
    assert status["rest"] is None and "rest" in status["errors"]

    assert text.exit_code == 0, text.output
    assert "consumer lag 6 events" in text.output
    assert "champion  version 1 since" in text.output
    assert "2 dead letters in the last hour, 20.0% of 10 events" in text.output
    assert "open retrain commands: 1" in text.output
