"""The Kafka broker SIGKILLed mid-stream and restarted, then stopped and started cleanly, under
the whole loop run as real `persona …` processes: the stream worker (both engines), the monitor,
the trainer, `persona replay` and `persona publish` recover by themselves (no restart), every
event lands once in PostgreSQL, every window is reported once, and the retrain command is not
lost (the trainer promotes version 2 and the stream hot-swaps to it).

The broker is this module's own single-node Kafka (infra.stack.kafka.KafkaService on free ports,
in a temporary folder): killing it takes down every partition, as the loss of a one-broker
deployment does, without disturbing the shared stack the other tests use. PostgreSQL and MLflow
are the shared stack's.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fault_tools import free_port, server_port, wait_for, wait_until
from loop_tools import label_rows, run_persona, topic_messages

from infra.demo.services import ChildService, persona_argv
from infra.stack.kafka import KafkaService
from infra.stack.layout import Layout
from personas import db
from personas.kafka import ensure_topics, topic_specs
from personas.settings import Settings, TopicNames, settings_env

FEBRUARY = 2400  # drifted (std 3.1) against a January reference (std 2)
RATE = 60  # events/s: the replay runs ~40 s, long enough to lose the broker twice in it


@pytest.fixture(scope="module")
def broker(
    stack_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaService]:
    """A private single-node Kafka for this module (~15 s to start)."""
    root = tmp_path_factory.mktemp("private-kafka")
    port, controller = server_port(), server_port()
    settings = stack_settings.model_copy(
        update={
            "kafka_port": port,
            "kafka_controller_port": controller,
            "kafka_bootstrap_servers": f"127.0.0.1:{port}",
            "kafka_partitions": 2,
        }
    )
    kafka = KafkaService(settings, Layout(root=root, cache=stack_settings.cache_dir.resolve()))
    assert kafka.start() == "started"
    yield kafka
    kafka.stop()


@dataclass
class Namespace:
    settings: Settings
    root: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = settings_env(self.settings)
        env.update(extra)
        return env

    def service(self, name: str, *args: str, **extra: str) -> ChildService:
        return ChildService(name, persona_argv(*args), self.root / f"{name}.log", self.env(**extra))


@pytest.fixture
def namespace(broker: KafkaService, tmp_path: Path) -> Iterator[Namespace]:
    """This test's topics (on the private broker), PostgreSQL schema and model name."""
    unique = uuid.uuid4().hex[:10]
    settings = broker.settings.model_copy(
        update={
            "topics": TopicNames.private(unique),
            "pg_schema": f"b_{unique}",
            "model_name": f"persona-model-b{unique}",
        }
    )
    ensure_topics(settings, topic_specs(settings))
    db.apply_migrations(settings)
    yield Namespace(settings, tmp_path)
    with db.connect(settings, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
    from mlflow.exceptions import MlflowException

    from personas import registry

    with contextlib.suppress(MlflowException):
        registry.client(settings).delete_registered_model(settings.model_name)


def generate(ns: Namespace, name: str, month: str, n: int, std: float, seed: int) -> Path:
    out = ns.root / "data" / f"{name}.parquet"
    run_persona(
        "generate", "--month", month, "--n", str(n), "--std", str(std), "--seed", str(seed),
        "--out", str(out), env=ns.env(),
    )  # fmt: skip
    return out


def restart(broker: KafkaService, *, clean: bool) -> None:
    """SIGKILL (a crash: unflushed pages, no controlled shutdown) or stop, then start again."""
    if clean:
        assert broker.stop() == "stopped"
    else:
        assert broker.kill() is not None
    assert broker.start() == "started"


def versions_in_pg(settings: Settings) -> dict[int, int]:
    with db.connect(settings, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT model_version, count(*) FROM persona_labels GROUP BY 1"
        ).fetchall()
    return {int(v): int(n) for v, n in rows}


@pytest.mark.timeout(900)
def test_the_loop_recovers_from_a_broker_crash_and_a_clean_restart(
    broker: KafkaService, namespace: Namespace
) -> None:
    ns, s = namespace, namespace.settings
    january = generate(ns, "jan", "2025-01", 1500, 2.0, 11)
    february = generate(ns, "feb", "2025-02", FEBRUARY, 3.1, 12)
    run_persona("train", "bootstrap", "--reference", str(january), env=ns.env())

    services = [
        ns.service(
            "stream", "stream", "--web-port", str(free_port()),
            PERSONA_STREAM_STATE_DIR=str(ns.root / "stream-state"),
        ),
        ns.service(
            "monitor", "monitor", "--window", "7d", "--group-id", f"persona-monitor-{s.model_name}",
            PERSONA_MONITOR_REPORTS="never",
        ),
        ns.service("trainer", "trainer", PERSONA_TRAINER_GROUP_ID=f"persona-trainer-{s.model_name}"),
    ]  # fmt: skip
    replay = ns.service("replay", "replay", "--file", str(february), "--rate", str(RATE), "--quiet")
    try:
        for service in services:
            service.start()
        stream = services[0]
        wait_until(stream, lambda: "persona stream worker ready" in stream.output(), 180, "ready")
        pids = {svc.name: svc.process.pid for svc in services if svc.process is not None}

        replay.start()
        wait_until(stream, lambda: label_rows(s)[0] >= FEBRUARY // 8, 180, "the first labels")
        restart(broker, clean=False)
        crashed_at = label_rows(s)[0]
        wait_until(
            stream, lambda: label_rows(s)[0] >= crashed_at + FEBRUARY // 8, 240, "labels after"
        )
        restart(broker, clean=True)
        assert replay.wait_exit(300) == 0, replay.output()[-3000:]

        # every event once, in PostgreSQL and on persona-labels
        wait_for(lambda: label_rows(s)[0] >= FEBRUARY, 300, f"{FEBRUARY} rows")
        assert label_rows(s) == (FEBRUARY, FEBRUARY)
        labels = topic_messages(s, s.topics.labels)
        assert len({label["event_id"] for label in labels}) == FEBRUARY

        # the drift was reported, each window once; the command reached the trainer: version 2
        def updates() -> list[dict[str, Any]]:
            return [u for u in topic_messages(s, s.topics.model_updates) if u["version"] == 2]

        (update,) = wait_for(updates, 300, "the trainer's version 2 on model-updates")
        assert update["previous_version"] == 1
        reports = [r for r in topic_messages(s, s.topics.alerts) if r.get("kind") == "drift_report"]
        assert any(r["status"] == "drift" for r in reports)
        twice = {w: n for w, n in Counter(r["window_id"] for r in reports).items() if n > 1}
        assert not twice, f"windows reported twice: {twice}"
        assert len(topic_messages(s, s.topics.retrain)) == 1

        # the stream swapped to version 2 without a restart: new events get it
        march = generate(ns, "mar", "2025-03", 300, 3.1, 13)
        run_persona("publish", str(march), "--quiet", env=ns.env())
        wait_for(lambda: versions_in_pg(s).get(2, 0) >= 300, 180, "300 labels by version 2")

        for service in services:
            service.check_alive()
            assert service.process is not None and service.process.pid == pids[service.name]
    finally:
        replay.stop()
        for service in services:
            service.stop()
        if broker.pid() is None:
            broker.start()  # never leave the next test without its broker


@pytest.mark.timeout(600)
def test_the_faust_agent_engine_and_the_publisher_recover_from_a_broker_crash(
    broker: KafkaService, namespace: Namespace
) -> None:
    ns, s = namespace, namespace.settings
    january = generate(ns, "jan", "2025-01", 1500, 2.0, 21)
    events = generate(ns, "feb", "2025-02", FEBRUARY, 2.0, 22)
    run_persona("train", "bootstrap", "--reference", str(january), env=ns.env())
    worker = ns.service(
        "stream", "stream", "--engine", "agent", "--web-port", str(free_port()),
        PERSONA_STREAM_STATE_DIR=str(ns.root / "agent-state"),
    )  # fmt: skip
    publisher = ns.service("publish", "publish", str(events), "--rate", str(RATE), "--quiet")
    try:
        worker.start()
        wait_until(worker, lambda: "persona stream worker ready" in worker.output(), 180, "ready")
        pid = worker.process.pid if worker.process else None
        publisher.start()
        wait_until(worker, lambda: label_rows(s)[0] >= FEBRUARY // 4, 180, "the first labels")
        restart(broker, clean=False)
        assert publisher.wait_exit(300) == 0, publisher.output()[-3000:]
        wait_until(worker, lambda: label_rows(s)[0] >= FEBRUARY, 300, f"{FEBRUARY} rows")
        assert label_rows(s) == (FEBRUARY, FEBRUARY)
        worker.check_alive()
        assert worker.process is not None and worker.process.pid == pid
    finally:
        publisher.stop()
        worker.stop()
        if broker.pid() is None:
            broker.start()
