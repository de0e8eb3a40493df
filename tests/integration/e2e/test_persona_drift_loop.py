"""Issue #16 through the live services: two personas drift apart (Steve +0.5σ, Haley −0.5σ in
x1, x2 from March on; pooled statistics see nothing), the per-persona test raises the alarm and
names them, the trainer's refit moves those two personas only and keeps every persona's identity,
and the alarm clears against the new champion. Stream worker, monitor and trainer run as
`persona …` processes on the real Kafka, PostgreSQL and MLflow, as in `make demo`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from infra.demo.runner import DemoOptions, run_demo
from infra.demo.scenario import DemoMonth
from infra.stack.process import free_port
from personas import registry
from personas.settings import Settings

pytestmark = pytest.mark.e2e

MARCH = datetime(2025, 3, 1, tzinfo=UTC)
APART = ("--shift-features", "x1,x2", "--shift-by-persona", "1,-1,0")
MONTHS = (
    DemoMonth("2025-01", 2.0, 201, "reference"),
    DemoMonth("2025-02", 2.0, 202, "quiet"),
    DemoMonth("2025-03", 2.0, 203, "Steve +0.5σ, Haley −0.5σ in x1, x2", APART),
    DemoMonth("2025-04", 2.0, 204, "stays so", APART),
)


def _moved(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {
        t.name.split(":")[1]
        for t in report.tests
        if t.name.startswith("persona:") and t.name.endswith(":shift") and t.failed
    }


@pytest.mark.timeout(480)
def test_personas_drifting_apart_retrain_only_those_personas(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    options = DemoOptions(
        months=MONTHS,
        events_per_month=2000,
        speed=172_800.0,
        out_dir=tmp_path / "demo",
        reset=False,
        web_port=free_port(),
        settle_timeout=150,
    )
    result = run_demo(isolated_settings, options, Console(width=140, force_terminal=False))
    assert result.pg_rows == result.pg_distinct == result.total_events == 4 * 2000
    reports = sorted(result.seen.reports, key=lambda r: r.window_start)

    # No drift before March; March drifts on the per-persona test, which names Steve and Haley.
    before = [r for r in reports if r.window_end <= MARCH]
    assert before and all(r.status != "drift" for r in before), [
        (r.window_id, r.status) for r in before
    ]
    drifted = [r for r in reports if r.status == "drift" and r.model_version == 1]
    assert drifted and drifted[0].window_start >= MARCH, [(r.window_id, r.status) for r in reports]
    failing = [r for r in reports if r.window_start >= MARCH and r.model_version == 1]
    assert all(
        "persona_shift" in {t.name for t in r.tests if t.failed}
        for r in failing
        if r.status != "ok"
    )
    assert any(_moved(r) == {"Sustainable Steve", "Eco-Conscious Haley"} for r in failing)
    assert all("Pragmatic Pat" not in _moved(r) for r in reports)

    # One retrain; the refit moved Steve up and Haley down in x1, x2 and nothing else much.
    assert [u.version for u in result.seen.updates] == [1, 2], result.seen.updates
    old = registry.load_version(isolated_settings, 1)
    new = registry.load_version(isolated_settings, 2)
    assert (new.persona_ids, new.persona_names) == (old.persona_ids, old.persona_names)
    delta = new.centroids - old.centroids
    assert np.all((delta[0, :2] > 0.5) & (delta[0, :2] < 1.5)), delta[0]
    assert np.all((delta[1, :2] < -0.5) & (delta[1, :2] > -1.5)), delta[1]
    assert np.abs(delta[:2, 2:]).max() < 0.6, delta
    assert np.abs(delta[2]).max() < 0.6, delta[2]  # Pat did not move

    # The alarm clears: the last windows are judged against v2 and are ok.
    assert reports[-1].model_version == 2 and reports[-1].status == "ok", reports[-1]
