"""Judging a closed window: insufficient data, relabelling, verdict, Evidently, report assembly."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.alerts import format_alert
from monitor.judge import judge, report_path, to_report
from monitor.policy import DriftPolicy
from monitor.settings import MonitorSettings
from monitor.stats import Reference
from monitor.windows import ClosedWindow

Draw = Callable[..., np.ndarray]
START = datetime(2025, 3, 3, tzinfo=UTC)


def closed(x: np.ndarray, *, versions: int | np.ndarray = 1, **extra: object) -> ClosedWindow:
    v = np.full(len(x), versions) if isinstance(versions, int) else versions
    fields = {
        "window_id": "7d-2025-03-03T00:00:00Z",
        "start": START,
        "end": START + timedelta(days=7),
        "event_count": len(x),
        "features": x,
        "model_versions": v,
        "sampled": False,
        "response_count": len(x),
        "late_events": 0,
        "offsets": {},
    }
    fields.update(extra)
    return ClosedWindow(**fields)  # type: ignore[arg-type]


def settings(**kwargs: object) -> MonitorSettings:
    base: dict[str, object] = {"reports": "never", "_env_file": None}
    base.update(kwargs)
    return MonitorSettings(**base)  # type: ignore[arg-type]


def test_too_few_events_is_insufficient_data(january: Reference, draw: Draw) -> None:
    x = draw(np.random.default_rng(1), 20)
    verdict = judge(closed(x), january, settings(min_events=50))
    assert verdict.outcome == "insufficient"
    assert verdict.tests[0].name == "info:too_few_events"
    assert verdict.tests[0].detail == "20 events; at least 50 are needed to judge a window"


def test_no_champion_is_insufficient_data(draw: Draw) -> None:
    verdict = judge(closed(draw(np.random.default_rng(1), 100), versions=3), None, settings())
    assert (verdict.outcome, verdict.model_version) == ("insufficient", 3)
    assert verdict.tests[0].name == "info:reference"


def test_drifted_window_fails_with_named_tests(january: Reference, draw: Draw) -> None:
    x = draw(np.random.default_rng(2), 115, std=3.1)
    verdict = judge(closed(x, response_count=120), january, settings())
    assert verdict.outcome == "fail"
    assert "distance_shift" in verdict.failed_tests
    names = [t.name for t in verdict.tests]
    assert names[:4] == ["distance_shift", "persona_mix", "residual_mean", "far_tail"]
    (share,) = [t for t in verdict.tests if t.name == "info:labelled_share"]
    assert share.statistic == pytest.approx(115 / 120)
    assert sum(verdict.persona_mix.values()) == pytest.approx(1.0)


def test_labels_of_another_version_are_relabelled_and_counted(
    january: Reference, draw: Draw
) -> None:
    x = draw(np.random.default_rng(3), 100)
    versions = np.array([1] * 60 + [0] * 40)
    verdict = judge(closed(x, versions=versions), january, settings())
    (note,) = [t for t in verdict.tests if t.name == "info:relabelled"]
    assert note.statistic == 40
    assert verdict.model_version == january.version == 1


def test_report_assembly_and_alert_line(january: Reference, draw: Draw) -> None:
    window = closed(draw(np.random.default_rng(4), 115, std=3.1))
    verdict = judge(window, january, settings())
    policy = DriftPolicy(consecutive=2)
    decision = policy.decide(
        window.window_id, window.start, window.end, verdict.outcome, model_version=1
    )
    report = to_report(window, verdict, decision, report_uri=None)
    assert (report.status, report.event_count, report.model_version) == ("warning", 115, 1)
    assert report.tests[-1].name == "info:policy"
    line, colour = format_alert(report)
    assert colour == "yellow"
    assert line.startswith("2025-03-03 00:00 → 2025-03-10 00:00  warning")
    assert "failed: distance_shift p=" in line
    assert "failed window 1 of 2 needed for drift" in line


def test_evidently_report_is_informational_and_saved(
    january: Reference, draw: Draw, tmp_path: Path
) -> None:
    window = closed(draw(np.random.default_rng(5), 200, std=3.1))
    verdict = judge(window, january, settings(reports="non_ok", reports_dir=tmp_path))
    assert verdict.evidently is not None
    columns = [t.name for t in verdict.tests if t.name.startswith("evidently:")]
    assert columns[0] == "evidently:dataset_drift"
    assert {"evidently:x1", "evidently:r_x10", "evidently:distance", "evidently:persona"} <= set(
        columns
    )
    # every persona's spread grew, so each gets its own distance column (its mean did not move)
    assert verdict.moved_personas == {name: [] for name in sorted(january.model.persona_names)}
    assert len(columns) == 1 + 10 + 10 + 2 + 3
    assert "evidently:Pragmatic Pat distance" in columns
    assert all(":" not in name for name in verdict.failed_tests)
    path = verdict.evidently.save_html(report_path(tmp_path, window.window_id, 1))
    assert path.name == "7d-2025-03-03T00_00_00Z-v1.html"
    assert path.stat().st_size > 100_000


def test_evidently_can_join_the_verdict(january: Reference, draw: Draw) -> None:
    window = closed(draw(np.random.default_rng(6), 200, std=3.1))
    ms = settings(evidently_in_verdict=True, evidently_residuals=False, tests=("far_tail",))
    verdict = judge(window, january, ms)
    (test,) = [t for t in verdict.tests if t.name == "evidently_dataset_drift"]
    assert test.failed == ("evidently_dataset_drift" in verdict.failed_tests)


def test_late_events_are_reported_with_the_oldest_time_and_shown_by_persona_alerts(
    january: Reference, draw: Draw
) -> None:
    x = draw(np.random.default_rng(4), 100)
    window = closed(x, late_events=3, late_oldest=datetime(2017, 3, 4, tzinfo=UTC))
    verdict = judge(window, january, settings())
    (note,) = [t for t in verdict.tests if t.name == "info:late_events"]
    assert note.statistic == 3
    assert note.detail is not None and "2017-03-04" in note.detail and note.failed is False
    decision = DriftPolicy(2, timedelta(days=21)).decide(
        window.window_id, window.start, window.end, verdict.outcome, model_version=1
    )
    line, _ = format_alert(to_report(window, verdict, decision, report_uri=None))
    assert "3 events arrived after their window was reported" in line


def _crashing_evidently(*args: object, **kwargs: object) -> object:
    raise RuntimeError("evidently blew up")


def test_evidently_crash_inside_the_verdict_is_not_a_pass(
    january: Reference,
    draw: Draw,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A verdict that includes Evidently's test cannot say "pass" when that test did not run."""
    monkeypatch.setattr("monitor.judge.run_report", _crashing_evidently)
    window = closed(draw(np.random.default_rng(8), 200))  # drift-free: the calibrated tests pass
    ms = settings(evidently_in_verdict=True)
    with caplog.at_level("ERROR", logger="monitor.judge"):
        verdict = judge(window, january, ms)
    assert verdict.outcome == "insufficient"
    assert verdict.failed_tests == [] and verdict.evidently is None
    (note,) = [t for t in verdict.tests if t.name == "info:verdict_error"]
    assert "evidently_dataset_drift could not run" in note.detail
    assert "RuntimeError: evidently blew up" in note.detail
    assert any(
        r.levelname == "ERROR" and window.window_id in r.getMessage() for r in caplog.records
    )
    decision = DriftPolicy(consecutive=1).decide(
        window.window_id, window.start, window.end, verdict.outcome, model_version=1
    )
    assert decision.status == "insufficient_data" and decision.retrain is None
    report = to_report(window, verdict, decision, report_uri=None)
    line, _ = format_alert(report)
    assert "evidently_dataset_drift could not run" in line


def test_evidently_crash_does_not_hide_a_failed_calibrated_test(
    january: Reference, draw: Draw, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verdict is an OR: a calibrated test that failed decides it without Evidently."""
    monkeypatch.setattr("monitor.judge.run_report", _crashing_evidently)
    window = closed(draw(np.random.default_rng(2), 115, std=3.1))
    verdict = judge(window, january, settings(evidently_in_verdict=True))
    assert verdict.outcome == "fail" and "distance_shift" in verdict.failed_tests
    (note,) = [t for t in verdict.tests if t.name == "info:verdict_error"]
    assert "fails on the calibrated tests alone" in note.detail


def test_evidently_report_crash_outside_the_verdict_is_said_in_the_report(
    january: Reference, draw: Draw, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Report-only Evidently: the verdict stands; the report says why it has no Evidently part."""
    monkeypatch.setattr("monitor.judge.run_report", _crashing_evidently)
    window = closed(draw(np.random.default_rng(5), 200, std=3.1))
    verdict = judge(window, january, settings(reports="non_ok"))
    assert verdict.outcome == "fail" and verdict.evidently is None
    (note,) = [t for t in verdict.tests if t.name == "info:evidently_report"]
    assert note.failed is False and "RuntimeError: evidently blew up" in note.detail


def test_a_persona_drift_is_reported_by_persona_and_feature_in_the_report_and_alert_line(
    january: Reference, draw: Draw, tmp_path: Path
) -> None:
    """Steve +0.5σ and Haley −0.5σ in x1, x2: the report says who moved and in which features,
    its JSON still parses as the unchanged DriftReport schema, and the Evidently report carries
    the moved personas' own residual columns (not the others')."""
    from pydantic import TypeAdapter

    from personas.schemas import Alert, DriftReport

    moved = np.zeros((3, 10))
    moved[0, :2], moved[1, :2] = 1.0, -1.0
    window = closed(draw(np.random.default_rng(7), 1500, persona_shift=moved))
    verdict = judge(window, january, settings(reports="non_ok", reports_dir=tmp_path))
    assert "persona_shift" in verdict.failed_tests
    assert "residual_mean" not in verdict.failed_tests  # the pooled test is blind to it
    assert {p: sorted(f) for p, f in verdict.moved_personas.items()} == {
        "Eco-Conscious Haley": ["x1", "x2"],
        "Sustainable Steve": ["x1", "x2"],
    }
    tests = {t.name: t for t in verdict.tests}
    assert tests["persona:Sustainable Steve:shift"].failed
    assert tests["persona:Eco-Conscious Haley:shift"].failed
    assert not tests["persona:Pragmatic Pat:shift"].failed
    assert not tests["persona:Sustainable Steve:spread"].failed
    steve = tests["persona:Sustainable Steve:shift"]
    assert steve.p_value is not None and steve.threshold is not None
    assert steve.p_value < steve.threshold
    assert tests["persona:Sustainable Steve:x1"].statistic > 0.2  # type: ignore[operator]
    assert tests["persona:Eco-Conscious Haley:x2"].statistic < -0.2  # type: ignore[operator]
    assert not any(n.startswith("persona:Pragmatic Pat:x") for n in tests)
    columns = {t.name: t for t in verdict.tests if t.name.startswith("evidently:")}
    assert columns["evidently:Sustainable Steve r_x1"].failed
    assert columns["evidently:Eco-Conscious Haley r_x2"].failed
    assert "evidently:Sustainable Steve distance" in columns
    assert "evidently:Sustainable Steve r_x3" not in columns  # only the features that moved
    assert not any("Pragmatic Pat" in name for name in columns)

    decision = DriftPolicy().decide(
        window.window_id, window.start, window.end, verdict.outcome, model_version=1
    )
    report = to_report(window, verdict, decision, report_uri=None)
    parsed = TypeAdapter(Alert).validate_json(report.model_dump_json())
    assert isinstance(parsed, DriftReport) and parsed == report
    line, _ = format_alert(report)
    assert "failed: persona_shift p=" in line
    assert "moved: Sustainable Steve shift x" in line and "Eco-Conscious Haley shift x" in line
