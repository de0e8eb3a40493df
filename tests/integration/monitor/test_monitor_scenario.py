"""The original scenario on the real stack: January is the champion's reference, February is fresh
std-2 noise, March std 3.1, April std 2 again, no retrain in between.

Expected: no drift in February or April windows, drift in March windows, exactly one retrain command
(for the March episode), one DriftReport on Kafka and one drift_reports row per closed window. A
second instance (own consumer group) re-reads everything and publishes nothing new.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.service import MonitorStats, run
from monitor.settings import MonitorSettings
from personas import db, registry
from personas.catalogue import FEATURES
from personas.model import CentroidModel
from personas.schemas import DriftReport, PersonaLabel, RetrainCommand, SurveyResponse
from personas.settings import Settings

pytestmark = pytest.mark.integration

MONTHS = [  # (first day, days, std, seed)
    (datetime(2025, 2, 1, tzinfo=UTC), 28, 2.0, 202502),
    (datetime(2025, 3, 1, tzinfo=UTC), 31, 3.1, 202503),
    (datetime(2025, 4, 1, tzinfo=UTC), 30, 2.0, 202504),
]
WEEK = timedelta(days=7)
ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)  # Monday
SENTINEL = datetime(2025, 5, 20, tzinfo=UTC)  # moves the watermark past April's last window


def _month(rng: np.random.Generator, centroids: np.ndarray, n: int, std: float) -> np.ndarray:
    which = rng.choice(len(centroids), size=n)
    return centroids[which] + rng.normal(0.0, std, size=(n, centroids.shape[1]))


def _register_champion(settings: Settings, model: CentroidModel, january: np.ndarray) -> int:
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


def _publish(
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
        x = _month(rng, model.centroids, 500, std)
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


def _read(settings: Settings, topic: str, expected: int, timeout: float) -> list[bytes]:
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


@pytest.fixture
def monitors() -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for m in started:
        m.stop.set()
        m.thread.join(60)


def test_march_drifts_february_and_april_do_not_one_retrain(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    tmp_path: Path,
    monitors: list[Running],
) -> None:
    settings = isolated_settings
    vendor = vendor_model
    january = _month(np.random.default_rng(202501), vendor.centroids, 500, 2.0)
    version = _register_champion(settings, vendor, january)
    champion = registry.load_version(settings, version)
    times = _publish(settings, champion)

    starts = sorted({ORIGIN + ((t - ORIGIN) // WEEK) * WEEK for t in times if t < SENTINEL})
    expected_windows = len(starts)
    assert expected_windows == 14  # Jan 27 … Apr 28 weeks

    ms = MonitorSettings(
        _env_file=None,  # type: ignore[call-arg]
        window="7d",
        window_origin=ORIGIN,
        allowed_lateness="1h",
        min_events=40,
        reports="non_ok",
        reports_dir=tmp_path / "reports",
        group_id=f"monitor-a-{settings.model_name}",
        instance_id="monitor-a",
        commit_interval_s=0.5,
    )
    monitors.append(Running(settings, ms))
    raw = _read(settings, settings.topics.alerts, expected_windows, timeout=150)
    stats = monitors[0].finish()

    reports = [DriftReport.model_validate_json(v) for v in raw]
    assert [r.window_start for r in reports] == starts
    assert stats.published == expected_windows and stats.late == 0 and stats.invalid == 0
    assert stats.labels == 1501 and stats.responses == 1501

    def inside(r: DriftReport, month: int) -> bool:
        return (
            r.window_start.month == month and (r.window_end - timedelta(seconds=1)).month == month
        )

    feb = [r for r in reports if inside(r, 2)]
    mar = [r for r in reports if inside(r, 3)]
    apr = [r for r in reports if inside(r, 4)]
    assert (len(feb), len(mar), len(apr)) == (3, 4, 3)
    assert [r.status for r in feb + apr] == ["ok"] * 6
    assert all(r.report_uri is None for r in feb + apr)
    assert [r.status for r in mar][1:] == ["drift"] * 3
    assert mar[0].status in ("warning", "drift")
    for r in mar:
        failed = {t.name for t in r.tests if t.failed and ":" not in t.name}
        assert "distance_shift" in failed
        assert r.report_uri is not None and Path(r.report_uri).stat().st_size > 100_000
    for r in reports:
        assert r.model_version == version
        (share,) = [t for t in r.tests if t.name == "info:labelled_share"]
        assert share.statistic == 1.0
    assert reports[0].status == "insufficient_data"  # Feb 1–2 only: fewer than 40 events
    # the whole seeded sequence: the Feb 24 – Mar 3 week (2 March days) starts the episode
    assert [r.status for r in reports] == (
        ["insufficient_data", "ok", "ok", "ok", "warning"] + ["drift"] * 5 + ["ok"] * 4
    )

    commands = [
        RetrainCommand.model_validate_json(v)
        for v in _read(settings, settings.topics.retrain, 1, 5)
    ]
    assert len(commands) == 1
    (command,) = commands
    # trained on the episode without its first (straddling) window: March data only
    second_failed = [r for r in reports if r.status in ("warning", "drift")][1]
    assert command.range_start == second_failed.window_start
    assert command.window_ids[0] == second_failed.window_id
    assert command.range_start == datetime(2025, 3, 3, tzinfo=UTC)
    assert command.range_end == next(r for r in reports if r.status == "drift").window_end
    assert command.requested_by == "monitor:monitor-a"

    with db.connect(settings) as conn:
        rows = conn.execute(
            "SELECT window_id, status, event_count, model_version, retrain_command_id, decided_by"
            " FROM drift_reports ORDER BY window_start"
        ).fetchall()
    assert [(w, s, n, v) for w, s, n, v, _, _ in rows] == [
        (r.window_id, r.status, r.event_count, version) for r in reports
    ]
    assert [c for *_, c, _ in rows if c is not None] == [command.command_id]
    assert {d for *_, d in rows} == {"monitor-a"}

    # A second instance with its own group reads every partition again: same windows, all already
    # decided, so nothing new is published.
    second = Running(
        settings, ms.model_copy(update={"group_id": ms.group_id + "-b", "instance_id": "monitor-b"})
    )
    monitors.append(second)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and second.stats.adopted < expected_windows:
        time.sleep(0.5)
    stats_b = second.finish()
    assert (stats_b.adopted, stats_b.published, stats_b.retrains) == (expected_windows, 0, 0)
    assert len(_read(settings, settings.topics.alerts, expected_windows, 5)) == expected_windows
    assert len(_read(settings, settings.topics.retrain, 1, 3)) == 1


def test_restart_mid_stream_publishes_every_window_once_with_full_counts(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    monitors: list[Running],
) -> None:
    """Stop while windows are open, restart with the same group: the open windows' events were not
    committed, so they are re-read; every window is published once, with all its events."""
    from monitor.reference import StaticReference
    from monitor.stats import Reference

    settings = isolated_settings
    january = _month(np.random.default_rng(202501), vendor_model.centroids, 500, 2.0)
    reference = StaticReference(Reference.build(vendor_model, january))
    ms = MonitorSettings(
        _env_file=None,  # type: ignore[call-arg]
        window="7d",
        window_origin=ORIGIN,
        min_events=40,
        reports="never",
        group_id=f"monitor-r-{settings.model_name}",
        commit_interval_s=0.2,
    )

    def start() -> Running:
        running = Running(settings, ms, reference=reference)
        monitors.append(running)
        return running

    times = _publish(settings, vendor_model, MONTHS[:2], sentinel=False)  # Feb, March
    first = start()
    before = _read(settings, settings.topics.alerts, 9, timeout=60)
    # closed: Jan 27 … Mar 24 (9 weeks); open: the week of Mar 31 (the watermark is on Mar 31)
    assert len(before) == 9
    first.finish()
    times += _publish(settings, vendor_model, MONTHS[2:], first_id=len(times))  # April + May
    second = start()
    after = _read(settings, settings.topics.alerts, 14, timeout=60)
    stats = second.finish()

    reports = [DriftReport.model_validate_json(v) for v in after]
    starts = sorted({ORIGIN + ((t - ORIGIN) // WEEK) * WEEK for t in times if t < SENTINEL})
    assert [r.window_start for r in reports] == starts
    counts = {s: 0 for s in starts}
    for t in times:
        if t < SENTINEL:
            counts[ORIGIN + ((t - ORIGIN) // WEEK) * WEEK] += 1
    assert [r.event_count for r in reports] == [counts[s] for s in starts]
    assert stats.published == 5 and stats.adopted == 0
    assert [r.status for r in reports] == (
        ["insufficient_data", "ok", "ok", "ok", "warning"] + ["drift"] * 5 + ["ok"] * 4
    )
    assert len(_read(settings, settings.topics.retrain, 1, 3)) == 1


def test_after_a_hot_swap_windows_are_judged_against_the_new_reference(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    monitors: list[Running],
) -> None:
    """March drifts against January; then a champion whose reference is March (std 3.1) takes
    over: the rest of the stream is judged against it (model_version 2, the v1 labels relabelled),
    the episode ends, and April (std 2, tighter than March) is not drift."""
    settings = isolated_settings
    january = _month(np.random.default_rng(202501), vendor_model.centroids, 500, 2.0)
    assert _register_champion(settings, vendor_model, january) == 1
    v1 = registry.load_version(settings, 1)
    ms = MonitorSettings(
        _env_file=None,  # type: ignore[call-arg]
        window="7d",
        window_origin=ORIGIN,
        min_events=40,
        reports="never",
        group_id=f"monitor-s-{settings.model_name}",
        commit_interval_s=0.2,
    )
    times = _publish(settings, v1, MONTHS[:2], sentinel=False)  # labelled by v1
    running = Running(settings, ms)
    monitors.append(running)
    assert len(_read(settings, settings.topics.alerts, 9, timeout=90)) == 9  # … Mar 24 week

    march = _month(np.random.default_rng(202503), vendor_model.centroids, 500, 3.1)
    assert _register_champion(settings, vendor_model, march) == 2
    _publish(settings, v1, MONTHS[2:], first_id=len(times))  # still labelled by v1
    raw = _read(settings, settings.topics.alerts, 14, timeout=90)
    running.finish()

    reports = [DriftReport.model_validate_json(v) for v in raw]
    assert [r.model_version for r in reports] == [1] * 9 + [2] * 5
    assert [r.status for r in reports] == (
        ["insufficient_data", "ok", "ok", "ok", "warning"] + ["drift"] * 4 + ["ok"] * 5
    )
    for r in reports[9:]:
        (note,) = [t for t in r.tests if t.name == "info:relabelled"]
        assert note.statistic == r.event_count  # every v1 label relabelled with v2
    assert len(_read(settings, settings.topics.retrain, 1, 3)) == 1


def test_an_outlier_event_time_neither_closes_windows_nor_makes_the_next_month_late(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    tmp_path: Path,
    monitors: list[Running],
) -> None:
    """Found by hand: one event dated 2031 between a replayed February and March made the
    monitor drop the next 2,076 events as late, and March was never judged. An event dated
    beyond the wall clock (+ PERSONA_MONITOR_FUTURE_MARGIN_S) is counted and ignored. (The
    stream worker dead-letters such events; this label comes from elsewhere.)"""
    settings = isolated_settings
    january = _month(np.random.default_rng(202501), vendor_model.centroids, 500, 2.0)
    champion = registry.load_version(settings, _register_champion(settings, vendor_model, january))
    ms = MonitorSettings(
        _env_file=None,  # type: ignore[call-arg]
        window="7d",
        window_origin=ORIGIN,
        allowed_lateness="1h",
        min_events=40,
        reports="non_ok",
        reports_dir=tmp_path / "reports",
        group_id=f"monitor-o-{settings.model_name}",
        commit_interval_s=0.5,
    )
    feb = _publish(settings, champion, MONTHS[:1], sentinel=False)
    monitors.append(Running(settings, ms))
    stats = monitors[0].stats
    deadline = time.monotonic() + 120
    while stats.labels < len(feb) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stats.labels == len(feb)

    _publish_outlier(settings, champion, datetime(2031, 1, 1, tzinfo=UTC), 90_001)
    while stats.future < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stats.future == 1

    march = _publish(settings, champion, MONTHS[1:2], sentinel=True, first_id=len(feb))
    march_starts = {ORIGIN + ((t - ORIGIN) // WEEK) * WEEK for t in march if t < SENTINEL}
    mar_weeks = {s for s in march_starts if s.month == 3 and (s + WEEK).month == 3}
    while time.monotonic() < deadline + 120:
        raw = _read(settings, settings.topics.alerts, 1, timeout=2)
        starts = {DriftReport.model_validate_json(v).window_start for v in raw}
        if mar_weeks <= starts:
            break
    stats = monitors[0].finish()
    assert mar_weeks <= starts, "March was never judged"
    assert stats.late == 0, f"{stats.late} events dropped as late"
    assert stats.future == 1


def _publish_outlier(settings: Settings, model: CentroidModel, at: datetime, number: int) -> None:
    from confluent_kafka import Producer

    from personas.kafka import producer_config

    values = {name: float(v) for name, v in zip(FEATURES, model.centroids[0], strict=True)}
    label = PersonaLabel(
        event_id=uuid.UUID(int=number), respondent_id="outlier", submitted_at=at,
        persona_id=model.persona_ids[0], persona_name=model.name_of(model.persona_ids[0]),
        distance=0.0, margin=1.0, is_outlier=False, model_version=model.version,
        labelled_at=datetime.now(UTC), **values,
    )  # fmt: skip
    producer = Producer(producer_config(settings))
    producer.produce(settings.topics.labels, label.model_dump_json().encode(), b"outlier")
    assert producer.flush(30) == 0
