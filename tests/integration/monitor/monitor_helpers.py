"""Helpers of the monitor integration tests: seeded months of labels, a champion with its
reference, topic readers, and the monitor run in a thread (``Running``) or as a real process."""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from monitor.service import MonitorStats, run
from monitor.settings import MonitorSettings
from personas import registry
from personas.catalogue import FEATURES
from personas.model import CentroidModel
from personas.schemas import PersonaLabel, SurveyResponse
from personas.settings import Settings

MONTHS = [  # (first day, days, std, seed)
    (datetime(2025, 2, 1, tzinfo=UTC), 28, 2.0, 202502),
    (datetime(2025, 3, 1, tzinfo=UTC), 31, 3.1, 202503),
    (datetime(2025, 4, 1, tzinfo=UTC), 30, 2.0, 202504),
]
WEEK = timedelta(days=7)
ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)  # Monday
SENTINEL = datetime(2025, 5, 20, tzinfo=UTC)  # moves the watermark past April's last window


def month(rng: np.random.Generator, centroids: np.ndarray, n: int, std: float) -> np.ndarray:
    which = rng.choice(len(centroids), size=n)
    return centroids[which] + rng.normal(0.0, std, size=(n, centroids.shape[1]))


def register_champion(settings: Settings, model: CentroidModel, january: np.ndarray) -> int:
    """The trainer's contract: persona_model.json + reference.parquet in one run, alias champion."""
    import pandas as pd

    client = registry.client(settings)
    name = f"monitor-test-{settings.model_name}"
    found = client.get_experiment_by_name(name)
    experiment = found.experiment_id if found else client.create_experiment(name)
    run_ = client.create_run(experiment)
    run_id = run_.info.run_id
    client.log_dict(run_id, model.to_dict(), registry.MODEL_ARTIFACT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / registry.REFERENCE_ARTIFACT
        pd.DataFrame(january, columns=list(FEATURES)).to_parquet(path)
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    if not client.search_registered_models(f"name = '{settings.model_name}'"):
        client.create_registered_model(settings.model_name)
    mv = client.create_model_version(settings.model_name, f"runs:/{run_id}", run_id)
    client.set_registered_model_alias(settings.model_name, settings.champion_alias, mv.version)
    return int(mv.version)


def publish(
    settings: Settings,
    model: CentroidModel,
    months: list[tuple[datetime, int, float, int]] = MONTHS,
    *,
    sentinel: bool = True,
    first_id: int = 0,
) -> list[datetime]:
    """Publish months as SurveyResponses and PersonaLabels (labelled here: no stream app)."""
    from confluent_kafka import Producer

    from personas.kafka import producer_config

    producer = Producer(producer_config(settings))
    times: list[datetime] = []
    rows: list[tuple[datetime, np.ndarray]] = []
    for first, days, std, seed in months:
        rng = np.random.default_rng(seed)
        x = month(rng, model.centroids, 500, std)
        offsets = np.sort(rng.uniform(0, days * 86_400, size=500))
        rows += [(first + timedelta(seconds=float(s)), x[i]) for i, s in enumerate(offsets)]
    if sentinel:
        rows.append((SENTINEL, model.centroids[0]))
    now = datetime.now(UTC)
    for i, (t, features) in enumerate(rows, start=first_id):
        labels = model.label(features.reshape(1, -1))
        values = {name: float(v) for name, v in zip(FEATURES, features, strict=True)}
        event_id, respondent = uuid.UUID(int=i + 1), f"r{i:05d}"
        response = SurveyResponse(
            event_id=event_id, respondent_id=respondent, submitted_at=t, **values
        )
        label = PersonaLabel(
            event_id=event_id,
            respondent_id=respondent,
            submitted_at=t,
            persona_id=int(labels.persona_id[0]),
            persona_name=model.name_of(int(labels.persona_id[0])),
            distance=float(labels.distance[0]),
            margin=float(labels.margin[0]),
            is_outlier=bool(labels.is_outlier[0]),
            model_version=model.version,
            labelled_at=now,
            **values,
        )
        ts = int(t.timestamp() * 1000)
        producer.produce(
            settings.topics.responses, response.model_dump_json().encode(), respondent, timestamp=ts
        )
        producer.produce(
            settings.topics.labels, label.model_dump_json().encode(), respondent, timestamp=ts
        )
        times.append(t)
    assert producer.flush(30) == 0
    return times


def read(settings: Settings, topic: str, expected: int, timeout: float) -> list[bytes]:
    """Read the whole topic until ``expected`` messages arrived or ``timeout`` passed."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from personas.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, f"reader-{uuid.uuid4().hex[:8]}"))
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(values) < expected:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
        # a little longer: anything beyond the expected count is a failure too
        end = time.monotonic() + 2
        while time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
    finally:
        consumer.close()
    return values


class Running:
    def __init__(self, settings: Settings, ms: MonitorSettings, reference: object = None) -> None:
        self.stop = threading.Event()
        self.stats = MonitorStats()
        self.error: BaseException | None = None
        self.reference = reference
        self.thread = threading.Thread(target=self._main, args=(settings, ms), daemon=True)
        self.thread.start()

    def _main(self, settings: Settings, ms: MonitorSettings) -> None:
        try:
            run(settings, ms, self.stop, stats=self.stats, reference=self.reference)  # type: ignore[arg-type]
        except BaseException as exc:  # surfaced by finish()
            self.error = exc

    def finish(self) -> MonitorStats:
        self.stop.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "monitor did not stop"
        if self.error is not None:
            raise self.error
        return self.stats


#: The seeded February–April sequence of MONTHS + SENTINEL, judged against January (7-day windows).
EXPECTED_STATUSES = ["insufficient_data", "ok", "ok", "ok", "warning"] + ["drift"] * 5 + ["ok"] * 4


def monitor_env(settings: Settings, group: str, **extra: str) -> dict[str, str]:
    """The environment of a `persona monitor` process judging MONTHS like the scenario tests."""
    from personas.settings import settings_env

    env = settings_env(settings)
    env.update(
        {
            "PERSONA_MONITOR_WINDOW": "7d",
            "PERSONA_MONITOR_WINDOW_ORIGIN": ORIGIN.isoformat(),
            "PERSONA_MONITOR_MIN_EVENTS": "40",
            "PERSONA_MONITOR_REPORTS": "never",
            "PERSONA_MONITOR_GROUP_ID": group,
            "PERSONA_MONITOR_INSTANCE_ID": "monitor-f",
            "PERSONA_MONITOR_COMMIT_INTERVAL_S": "0.2",
        }
    )
    env.update(extra)
    return env


def published_windows(settings: Settings) -> tuple[int, int]:
    """(rows in drift_reports, rows whose messages Kafka acknowledged)."""
    from personas import db

    with db.connect(settings) as conn:
        row = conn.execute("SELECT count(*), count(published_at) FROM drift_reports").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])
