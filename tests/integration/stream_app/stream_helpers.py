"""Helpers of the stream integration tests: events, a worker subprocess, topic readers, registry.

A worker is the project's one child-process class (``infra.demo.services.ChildService``: its own
session and log, stop/kill/output/returncode) plus what these tests ask of a stream worker: its
port, ``/health``, ``/metrics`` and waiting until it is ready."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fault_tools import free_port

from infra.demo.services import ChildService, persona_argv
from personas.catalogue import FEATURES
from personas.model import CentroidModel
from personas.settings import Settings


def make_events(
    model: CentroidModel, n: int, *, seed: int = 7, std: float = 2.0
) -> list[dict[str, Any]]:
    """n valid SurveyResponse documents drawn around the model's centroids (submitted now-ish)."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, model.n_personas, size=n)
    x = model.centroids[which] + rng.normal(0.0, std, size=(n, len(FEATURES)))
    start = datetime.now(UTC) - timedelta(minutes=5)
    events = []
    for i in range(n):
        doc: dict[str, Any] = {
            "schema_version": 1,
            "event_id": str(uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i)),
            "respondent_id": f"r-{seed}-{i}",
            "submitted_at": (start + timedelta(milliseconds=i)).isoformat(),
            "true_persona_id": int(model.persona_ids[which[i]]),
        }
        doc.update({name: float(v) for name, v in zip(FEATURES, x[i], strict=True)})
        events.append(doc)
    return events


def produce(
    settings: Settings, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    from confluent_kafka import Producer

    from personas.kafka import produce_waiting, producer_config

    producer = Producer(producer_config(settings, **{"linger.ms": 5}))
    n = 0
    for key, value in messages:
        produce_waiting(producer, topic, value, key)
        n += 1
    assert producer.flush(30) == 0
    return n


def produce_events(settings: Settings, events: list[dict[str, Any]]) -> int:
    return produce(
        settings,
        settings.topics.responses,
        ((e["respondent_id"].encode(), json.dumps(e).encode()) for e in events),
    )


def read_topic(
    settings: Settings, topic: str, *, expect: int, timeout: float = 60.0, idle: float = 0.0
) -> list[Any]:
    """Read a topic from the start until `expect` messages arrived (then `idle` more seconds)."""
    from confluent_kafka import Consumer

    from personas.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, f"test-reader-{uuid.uuid4().hex}"))
    consumer.subscribe([topic])
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    idle_until: float | None = None
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    got.append(msg)
            if len(got) >= expect:
                if idle_until is None:
                    idle_until = time.monotonic() + idle
                if time.monotonic() >= idle_until:
                    break
    finally:
        consumer.close()
    return got


def worker_env(settings: Settings, state_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in settings.topics.model_dump().items():
        env[f"PERSONA_TOPIC_{name.upper()}"] = value
    env["PERSONA_PG_SCHEMA"] = settings.pg_schema
    env["PERSONA_MODEL_NAME"] = settings.model_name
    env["PERSONA_STREAM_STATE_DIR"] = str(state_dir)
    env.update(extra)
    return env


@dataclass
class Worker(ChildService):
    """A `persona stream` subprocess and its web endpoint; its output goes to its log file."""

    port: int = 0

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return json.loads(r.read())
        except Exception:
            return None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def wait_ready(self, timeout: float = 90.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"worker exited {self.returncode}:\n{self.output()}")
            state = self.health()
            if state and state.get("ready"):
                return state
            time.sleep(0.3)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 60.0, sig: int = signal.SIGTERM) -> int | None:
        """``ChildService.stop`` with room for a worker's own stop before the SIGKILL: the
        in-flight batch's grace (PERSONA_STREAM_SHUTDOWN_GRACE, 20 s) and Faust's shutdown."""
        return super().stop(timeout, sig)


def start_worker(settings: Settings, state_dir: Path, *args: str, **env: str) -> Worker:
    port = free_port()
    worker = Worker(
        name=f"stream worker :{port}",
        argv=persona_argv("stream", "--web-port", str(port), *args),
        log=state_dir / f"worker-{port}.log",
        env=worker_env(settings, state_dir, **env),
        port=port,
    )
    worker.start()
    return worker


def register_version(settings: Settings, document: dict[str, Any], *, champion: bool = True) -> int:
    """Register a model version whose run holds `document` as persona_model.json (registry.py)."""
    from mlflow.exceptions import MlflowException

    from personas import registry

    client = registry.client(settings)
    name = f"stream-test-{settings.model_name}"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    with contextlib.suppress(MlflowException):  # already registered by an earlier call
        client.create_registered_model(settings.model_name)
    run = client.create_run(experiment_id)
    client.log_dict(run.info.run_id, document, registry.MODEL_ARTIFACT)
    client.set_terminated(run.info.run_id)
    mv = client.create_model_version(
        settings.model_name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    if champion:
        client.set_registered_model_alias(settings.model_name, settings.champion_alias, mv.version)
    return int(mv.version)


def publish_update(settings: Settings, version: int, previous: int | None = None) -> None:
    from personas.schemas import ModelUpdated, utc_now

    update = ModelUpdated(
        model_name=settings.model_name,
        version=version,
        alias=settings.champion_alias,
        previous_version=previous,
        updated_at=utc_now(),
    )
    produce(
        settings,
        settings.topics.model_updates,
        [(settings.model_name.encode(), update.model_dump_json().encode())],
    )


def committed_offsets(settings: Settings, group: str) -> int:
    """Sum of the group's committed offsets on the input topic (0 where nothing is committed)."""
    from confluent_kafka import Consumer, TopicPartition

    from personas.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, group))
    try:
        tps = [TopicPartition(settings.topics.responses, p) for p in range(4)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


class SteadyFlow(threading.Thread):
    """Produce events at a steady rate from a thread until ``stop`` (or the events run out).

    The rebalance and hot-swap tests act *while* events flow: a flow that lasts until the test
    stops it keeps every step of the scenario under load however slow the machine, and the test
    then knows exactly which events were sent (``stop`` returns them)."""

    def __init__(
        self, settings: Settings, events: list[dict[str, Any]], *, rate: float, chunk: int = 30
    ) -> None:
        super().__init__(name="steady-flow", daemon=True)
        self.settings = settings
        self.events = events
        self.rate = rate
        self.chunk = chunk
        self.produced = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        from confluent_kafka import Producer

        from personas.kafka import producer_config

        try:
            producer = Producer(producer_config(self.settings, **{"linger.ms": 5}))
            topic = self.settings.topics.responses
            started = time.monotonic()
            while not self._halt.is_set() and self.produced < len(self.events):
                batch = self.events[self.produced : self.produced + self.chunk]
                for e in batch:
                    producer.produce(topic, json.dumps(e).encode(), e["respondent_id"].encode())
                assert producer.flush(30) == 0, "flow: events not delivered"
                self.produced += len(batch)
                # Pace (not synchronisation): the next chunk is due at produced / rate.
                self._halt.wait(max(0.0, started + self.produced / self.rate - time.monotonic()))
        except BaseException as exc:
            self.error = exc

    def stop(self) -> list[dict[str, Any]]:
        """Stop producing; return the events sent (all delivered). Raises if the flow failed."""
        self._halt.set()
        self.join(60)
        if self.error is not None:
            raise AssertionError(f"the event flow failed: {self.error!r}") from self.error
        return self.events[: self.produced]


def _partitions(settings: Settings, topic: str) -> list[int]:
    from confluent_kafka.admin import AdminClient

    from personas.kafka import admin_config

    metadata = AdminClient(admin_config(settings)).list_topics(topic, timeout=10)
    return sorted(metadata.topics[topic].partitions)


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """High watermark of every partition of a topic."""
    from confluent_kafka import Consumer, TopicPartition

    from personas.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, f"test-offsets-{uuid.uuid4().hex}"))
    try:
        return {
            p: int(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in _partitions(settings, topic)
        }
    finally:
        consumer.close()


def committed_by_partition(settings: Settings, group: str) -> dict[int, int]:
    """The group's committed offset on each partition of the input topic (0 where none)."""
    from confluent_kafka import Consumer, TopicPartition

    from personas.kafka import consumer_config

    topic = settings.topics.responses
    consumer = Consumer(consumer_config(settings, group))
    try:
        tps = [TopicPartition(topic, p) for p in _partitions(settings, topic)]
        return {tp.partition: max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10)}
    finally:
        consumer.close()


def label_lock_waiters(settings: Settings) -> int:
    """Sessions waiting for a lock on this test's persona_labels (a worker's batch held)."""
    from personas import db

    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
            (f'"{settings.pg_schema}".persona_labels',),
        ).fetchone()
    assert row is not None
    return int(row[0])
