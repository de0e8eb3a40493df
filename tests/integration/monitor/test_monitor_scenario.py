"""The original scenario on the real stack: January is the champion's reference, February is fresh
std-2 noise, March std 3.1, April std 2 again, no retrain in between.

Expected: no drift in February or April windows, drift in March windows, exactly one retrain command
(for the March episode), one DriftReport on Kafka and one drift_reports row per closed window. A
second instance (own consumer group) re-reads everything and publishes nothing new.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from monitor_helpers import (
    MONTHS,
    ORIGIN,
    SENTINEL,
    WEEK,
    Running,
    month,
    publish,
    read,
    register_champion,
)

from monitor.settings import MonitorSettings
from personas import db, registry
from personas.catalogue import FEATURES
from personas.model import CentroidModel
from personas.schemas import DriftReport, PersonaLabel, RetrainCommand
from personas.settings import Settings

pytestmark = pytest.mark.integration


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
    january = month(np.random.default_rng(202501), vendor.centroids, 500, 2.0)
    version = register_champion(settings, vendor, january)
    champion = registry.load_version(settings, version)
    times = publish(settings, champion)

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
    raw = read(settings, settings.topics.alerts, expected_windows, timeout=150)
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
        RetrainCommand.model_validate_json(v) for v in read(settings, settings.topics.retrain, 1, 5)
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
    assert len(read(settings, settings.topics.alerts, expected_windows, 5)) == expected_windows
    assert len(read(settings, settings.topics.retrain, 1, 3)) == 1


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
    january = month(np.random.default_rng(202501), vendor_model.centroids, 500, 2.0)
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

    times = publish(settings, vendor_model, MONTHS[:2], sentinel=False)  # Feb, March
    first = start()
    before = read(settings, settings.topics.alerts, 9, timeout=60)
    # closed: Jan 27 … Mar 24 (9 weeks); open: the week of Mar 31 (the watermark is on Mar 31)
    assert len(before) == 9
    first.finish()
    times += publish(settings, vendor_model, MONTHS[2:], first_id=len(times))  # April + May
    second = start()
    after = read(settings, settings.topics.alerts, 14, timeout=60)
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
    assert len(read(settings, settings.topics.retrain, 1, 3)) == 1


def test_after_a_hot_swap_windows_are_judged_against_the_new_reference(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    monitors: list[Running],
) -> None:
    """March drifts against January; then a champion whose reference is March (std 3.1) takes
    over: the rest of the stream is judged against it (model_version 2, the v1 labels relabelled),
    the episode ends, and April (std 2, tighter than March) is not drift."""
    settings = isolated_settings
    january = month(np.random.default_rng(202501), vendor_model.centroids, 500, 2.0)
    assert register_champion(settings, vendor_model, january) == 1
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
    times = publish(settings, v1, MONTHS[:2], sentinel=False)  # labelled by v1
    running = Running(settings, ms)
    monitors.append(running)
    assert len(read(settings, settings.topics.alerts, 9, timeout=90)) == 9  # … Mar 24 week

    march = month(np.random.default_rng(202503), vendor_model.centroids, 500, 3.1)
    assert register_champion(settings, vendor_model, march) == 2
    publish(settings, v1, MONTHS[2:], first_id=len(times))  # still labelled by v1
    raw = read(settings, settings.topics.alerts, 14, timeout=90)
    running.finish()

    reports = [DriftReport.model_validate_json(v) for v in raw]
    assert [r.model_version for r in reports] == [1] * 9 + [2] * 5
    assert [r.status for r in reports] == (
        ["insufficient_data", "ok", "ok", "ok", "warning"] + ["drift"] * 4 + ["ok"] * 5
    )
    for r in reports[9:]:
        (note,) = [t for t in r.tests if t.name == "info:relabelled"]
        assert note.statistic == r.event_count  # every v1 label relabelled with v2
    assert len(read(settings, settings.topics.retrain, 1, 3)) == 1


def test_an_outlier_event_time_neither_closes_windows_nor_makes_the_next_month_late(
    isolated_settings: Settings,
    vendor_model: CentroidModel,
    tmp_path: Path,
    monitors: list[Running],
) -> None:
    """Found by hand: one event dated 2031 between a replayed February and March made the
    monitor drop the next 2,076 events as late, and March was never judged. An event dated
    beyond the wall clock (+ PERSONA_MONITOR_FUTURE_MARGIN_S) is counted and ignored. (The
    stream worker dead-letters such events; this label comes from elsewhere.) One dated 2019, long
    before every window the monitor keeps, is late: not judged, counted and reported."""
    settings = isolated_settings
    january = month(np.random.default_rng(202501), vendor_model.centroids, 500, 2.0)
    champion = registry.load_version(settings, register_champion(settings, vendor_model, january))
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
    feb = publish(settings, champion, MONTHS[:1], sentinel=False)
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
    # and one from long before anything the monitor keeps: not judged, but counted and reported
    _publish_outlier(settings, champion, datetime(2019, 6, 1, tzinfo=UTC), 90_002)
    while stats.late < 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stats.late == 1

    march = publish(settings, champion, MONTHS[1:2], sentinel=True, first_id=len(feb))
    march_starts = {ORIGIN + ((t - ORIGIN) // WEEK) * WEEK for t in march if t < SENTINEL}
    mar_weeks = {s for s in march_starts if s.month == 3 and (s + WEEK).month == 3}
    while time.monotonic() < deadline + 120:
        raw = read(settings, settings.topics.alerts, 1, timeout=2)
        starts = {DriftReport.model_validate_json(v).window_start for v in raw}
        if mar_weeks <= starts:
            break
    stats = monitors[0].finish()
    assert mar_weeks <= starts, "March was never judged"
    assert stats.late == 1, f"{stats.late} events dropped as late (only the 2019 one is)"
    assert stats.future == 1
    notes = [
        t
        for v in raw
        for t in DriftReport.model_validate_json(v).tests
        if t.name == "info:late_events"
    ]
    assert [(n.statistic, "2019-06-01" in (n.detail or "")) for n in notes] == [(1.0, True)]


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
