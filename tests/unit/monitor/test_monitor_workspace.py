"""The drift history in an Evidently workspace: what each window records, the dashboard's panels
select those values (read back through the UI server's own data storage), a full report is linked,
and a broken workspace never raises."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.evidently_report import run_report
from monitor.stats import Reference, label_window
from monitor.workspace import (
    TAB,
    WindowHistory,
    dashboard_panels,
    forget,
    project_name,
    window_values,
)
from personas.schemas import DriftReport, DriftTest

START = datetime(2025, 1, 6, tzinfo=UTC)
CALIBRATED = ("distance_shift", "persona_mix", "residual_mean", "far_tail")


def report(
    i: int,
    status: str = "ok",
    *,
    mix: dict[str, float] | None = None,
    p: float | None = 0.3,
    version: int = 1,
) -> DriftReport:
    tests = [
        DriftTest(name=name, statistic=0.5, p_value=p, threshold=0.0025, failed=p < 0.0025)
        for name in CALIBRATED
        if p is not None
    ]
    tests += [
        DriftTest(name="info:labelled_share", statistic=0.97, failed=False, detail="97 of 100"),
        DriftTest(name="evidently:x1", p_value=0.5, threshold=0.05, failed=False, detail="ks"),
    ]
    return DriftReport(
        window_id=f"7d-{(START + timedelta(days=7 * i)).isoformat()}",
        window_start=START + timedelta(days=7 * i),
        window_end=START + timedelta(days=7 * (i + 1)),
        event_count=100 + i,
        model_version=version,
        status=status,  # type: ignore[arg-type]
        tests=tests,
        persona_mix=mix if mix is not None else {"Steve": 0.3, "Haley": 0.3, "Pat": 0.4},
        mean_distance=6.0 + i,
        created_at=datetime.now(UTC),
    )


def test_window_values_are_the_plotted_numbers_of_the_report() -> None:
    values = {v.field: v.value for v in window_values(report(0, "warning", p=1e-5))}
    assert values["status:warning"] == 1.0
    assert not any(f.startswith("status:") and f != "status:warning" for f in values)
    assert values["mix:Pat"] == 0.4
    assert values["labelled_share"] == 0.97
    assert values["model_version"] == 1.0 and values["events"] == 100.0
    assert values["nlog10p:distance_shift"] == pytest.approx(5.0)
    assert values["nlog10threshold:far_tail"] == pytest.approx(2.6021, abs=1e-4)
    assert not any("x1" in f for f in values)  # informational Evidently columns are not plotted


def test_an_insufficient_window_has_no_p_values() -> None:
    fields = {v.field for v in window_values(report(0, "insufficient_data", p=None, mix={}))}
    assert "status:insufficient_data" in fields
    assert not any(f.startswith(("nlog10p:", "mix:")) for f in fields)


def test_panels_follow_the_data_in_the_monitor_s_test_order() -> None:
    fields = {v.field for v in window_values(report(0))}
    titles = [p.title for p in dashboard_panels(fields)]
    assert titles[:2] == ["Window status", "Persona mix"]
    assert titles[2:6] == [f"{t}: p-value against its threshold" for t in CALIBRATED]
    assert {"Labelled share", "Model version"} <= set(titles)
    (mix,) = [p for p in dashboard_panels(fields) if p.title == "Persona mix"]
    assert [v.legend for v in mix.values] == ["Haley", "Pat", "Steve"]


def _series(path: Path, project_id: Any, panel: Any) -> Any:
    """What the UI server answers for one panel (its data-series endpoint, without HTTP)."""
    from evidently.ui.service.base import SeriesFilter
    from evidently.ui.service.storage.local.base import InMemoryDataStorage

    storage = InMemoryDataStorage(str(path))
    filters = [
        SeriesFilter(
            tags=v.tags, metadata=v.metadata, metric=v.metric, metric_labels=v.metric_labels
        )
        for v in panel.values
    ]
    return asyncio.run(storage.get_data_series(project_id, filters, None, None))


def _project(path: Path, name: str) -> Any:
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(path))
    (project,) = workspace.search_project(name)
    return workspace, project


def test_every_window_is_a_point_of_the_dashboard(tmp_path: Path) -> None:
    path, name = tmp_path / "ws", project_name("persona-model-t")
    history = WindowHistory(path, name)
    statuses = ["ok", "warning", "drift", "ok", "insufficient_data"]
    for i, status in enumerate(statuses):
        p = None if status == "insufficient_data" else (1e-9 if status != "ok" else 0.4)
        assert history.record(report(i, status, p=p, version=1 if i < 3 else 2))
    workspace, project = _project(path, name)
    assert len(workspace.list_runs(project.id)) == len(statuses)
    dashboard = workspace.get_dashboard(project.id)
    assert [t.title for t in dashboard.tabs] == [TAB]
    panels = {p.title: p for p in dashboard.panels}

    status = _series(path, project.id, panels["Window status"])
    assert len(status.sources) == len(statuses)
    per_status = {s.params["field"]: s.values for s in status.series}
    assert [i for i, v in enumerate(per_status["status:ok"]) if v == 1.0] == [0, 3]
    assert per_status["status:drift"][2] == 1.0
    version = _series(path, project.id, panels["Model version"])
    (line,) = version.series
    assert line.values == [1.0, 1.0, 1.0, 2.0, 2.0]
    pvalues = _series(path, project.id, panels["distance_shift: p-value against its threshold"])
    assert len(pvalues.sources) == 4  # the insufficient window has no p-value
    assert [s.timestamp for s in status.sources][-1] == datetime(2025, 2, 3)  # window start


def test_a_persona_that_appears_later_gets_its_series(tmp_path: Path) -> None:
    path, name = tmp_path / "ws", "persona-monitor t"
    WindowHistory(path, name).record(report(0, mix={"Steve": 0.5, "Pat": 0.5}))
    workspace, project = _project(path, name)
    first = {p.title: p.id for p in workspace.get_dashboard(project.id).panels}
    # a restarted monitor keeps the personas it saw and adds the new one
    WindowHistory(path, name).record(report(1, mix={"Steve": 0.4, "Pat": 0.4, "Fiona": 0.2}))
    dashboard = workspace.get_dashboard(project.id)
    (mix,) = [p for p in dashboard.panels if p.title == "Persona mix"]
    assert [v.legend for v in mix.values] == ["Fiona", "Pat", "Steve"]
    assert {p.title: p.id for p in dashboard.panels} == first  # same panels, same ids


def test_a_full_report_is_added_and_linked_from_the_window(
    january: Reference, tmp_path: Path
) -> None:
    x = np.random.default_rng(3).normal(0, 3, size=(120, 10))
    full = run_report(
        january, x, label_window(january.model, x), residuals=False, name="7d-w", timestamp=START
    ).snapshot
    path, name = tmp_path / "ws", "persona-monitor t"
    assert WindowHistory(path, name).record(report(0, "warning", p=1e-6), full)
    workspace, project = _project(path, name)
    runs = workspace.list_runs(project.id)
    assert len(runs) == 2
    small = [r for r in runs if workspace.get_run(project.id, r).metadata.get("window_id")]
    (small_id,) = small
    (full_id,) = set(runs) - {small_id}
    link = f"/projects/{project.id}/reports/{full_id}"
    model = workspace.get_run(project.id, small_id)
    assert model.metadata["full_report"] == link
    text = json.dumps([w.dict() for w in model.widgets])
    assert link in text and "distance_shift" in text


def test_a_broken_workspace_is_logged_and_never_raises(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    history = WindowHistory(blocked, "persona-monitor t")
    with caplog.at_level(logging.WARNING, logger="monitor.workspace"):
        assert history.record(report(0)) is False
        assert history.record(report(1)) is False
    assert history.failures == 2 and history.recorded == 0
    assert "could not record window 7d-2025-01-06" in caplog.text
    assert "2 failures so far" in caplog.text


def test_forget_deletes_only_the_named_project(tmp_path: Path) -> None:
    path = tmp_path / "ws"
    WindowHistory(path, "persona-monitor a").record(report(0))
    WindowHistory(path, "persona-monitor b").record(report(0))
    assert forget(path, "persona-monitor a") == 1
    assert forget(tmp_path / "missing", "persona-monitor a") == 0
    from evidently.ui.workspace import Workspace

    assert [p.name for p in Workspace(str(path)).list_projects()] == ["persona-monitor b"]


def test_per_persona_parts_get_a_panel_naming_the_persona_that_moved() -> None:
    base = report(0, "warning", p=1e-6)
    parts = [
        DriftTest(name="persona_shift", p_value=1e-8, threshold=0.0025, failed=True),
        DriftTest(name="persona:Steve:shift", p_value=1e-8, threshold=0.0025, failed=True),
        DriftTest(name="persona:Pat:shift", p_value=0.1, threshold=0.0025, failed=False),
        DriftTest(name="persona:Steve:x1", statistic=0.5, p_value=1e-9, failed=True),
    ]
    values = {v.field: v.value for v in window_values(base.model_copy(update={"tests": parts}))}
    assert values["persona_shift:Steve"] == pytest.approx(8.0)
    assert values["persona_shift:Pat"] == pytest.approx(1.0)
    assert not any("x1" in f for f in values)
    panels = {p.title: p for p in dashboard_panels(values)}
    panel = panels["persona_shift per persona: adjusted p-value against the threshold"]
    assert [v.legend for v in panel.values] == ["Pat", "Steve", "threshold (fails above)"]
    assert "persona_spread per persona: adjusted p-value against the threshold" not in panels


def test_a_new_monitor_rewrites_an_older_layout_once(tmp_path: Path) -> None:
    from evidently.sdk.models import DashboardModel, DashboardTabModel

    path, name = tmp_path / "ws", "persona-monitor t"
    WindowHistory(path, name).record(report(0))
    workspace, project = _project(path, name)
    (old,) = dashboard_panels({v.field for v in window_values(report(0))})[:1]
    every = [v.field for v in window_values(report(1))]
    old = old.copy(
        update={
            "title": "Old",
            "values": [old.values[0].copy(update={"metric_labels": {"field": f}}) for f in every],
        }
    )
    tab = DashboardTabModel(title=TAB, panels=[old.id])
    workspace.save_dashboard(project.id, DashboardModel(tabs=[tab], panels=[old]))
    WindowHistory(path, name).record(report(1))  # nothing new in its values, a new layout
    titles = [p.title for p in workspace.get_dashboard(project.id).panels]
    assert "Old" not in titles and titles[0] == "Window status"
