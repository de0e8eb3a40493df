"""A small version of `make demo` through the real services (stream worker, monitor, trainer as
`persona …` processes; real Kafka, PostgreSQL, MLflow), asserting the story a user is promised:
drift is found in the drifted month only, one retrain, the swap shows in the labels, and every
event is stored exactly once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from infra.demo.runner import DemoOptions, run_demo
from infra.stack.process import free_port
from personas.settings import Settings

pytestmark = pytest.mark.e2e

MARCH = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.mark.timeout(420)
def test_demo_story(isolated_settings: Settings, tmp_path: Path):
    options = DemoOptions(
        events_per_month=1400,
        speed=172_800.0,  # two days of event time a second: the four months in about a minute
        out_dir=tmp_path / "demo",
        reset=False,
        web_port=free_port(),
        settle_timeout=150,
    )
    result = run_demo(isolated_settings, options, Console(width=140, force_terminal=False))
    seen = result.seen

    # Nothing lost, nothing duplicated.
    assert result.total_events == 4 * 1400
    assert result.pg_rows == result.pg_distinct == result.total_events
    assert len(seen.event_ids) == result.total_events

    # Drift in the drifted month only: never before March, and March is caught.
    reports = sorted(seen.reports, key=lambda r: r.window_start)
    before = [r for r in reports if r.window_end <= MARCH]
    assert before and all(r.status in ("ok", "insufficient_data") for r in before), [
        (r.window_id, r.status) for r in before
    ]
    assert any(r.status == "drift" and r.window_start >= MARCH for r in reports)

    # One retrain, one hot swap, seen in the labels (v1 is the bootstrap's own update).
    assert [u.version for u in seen.updates] == [1, 2], seen.updates
    assert set(seen.labels_by_version) == {1, 2}, seen.labels_by_version
    assert seen.first_event_time_by_version[2] >= MARCH

    # The alarm clears: the last closed windows are judged against v2 and are ok.
    assert reports[-1].model_version == 2 and reports[-1].status == "ok", reports[-1]
    assert result.plot_path is not None and result.plot_path.stat().st_size > 10_000

    # The drift history for `persona ui`: every window the demo saw, in the demo's workspace.
    from evidently.ui.workspace import Workspace

    from monitor.workspace import project_name

    workspace = Workspace(str(options.out_dir / "workspace"))
    (project,) = workspace.search_project(project_name(isolated_settings.model_name))
    recorded = {
        str(workspace.get_run(project.id, run).metadata.get("window_id"))
        for run in workspace.list_runs(project.id)
    } - {"None"}
    assert recorded == {r.window_id for r in reports}
    assert "PERSONA_MONITOR_EVIDENTLY_WORKSPACE=" in (options.out_dir / "demo.env").read_text()
