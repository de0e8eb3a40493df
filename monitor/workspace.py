"""The drift history in Evidently's own UI: every closed window in a local Evidently workspace.

`persona ui` (``evidently ui``) shows a project per registered model, ``persona-monitor <model>``,
with a dashboard configured here, in code: window status, each calibrated test's p-value against
its threshold, the persona mix, the labelled share, the model version, events per window.

Every window the monitor decides is recorded as a small snapshot holding the window's own values
(:class:`monitor.workspace_metric.WindowValue`, one per number; ≈ 10 ms): a full DataDriftPreset
report costs 0.5–2 s, too much for every window. A window that got a full Evidently report (the
``reports`` setting) has that report added too, and its small snapshot links to it. Clicking a
point of a panel opens the window's snapshot: one click from the history to the window.

It runs in the judge thread after the window is delivered (off the consumer's path), and a broken
workspace (disk full, a file Evidently cannot read) is logged and never stops the monitor: the
history is a view; the drift_reports table is the record.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.settings import TEST_NAMES
from personas.schemas import DriftReport

__all__ = [
    "STATUSES",
    "TAB",
    "WindowHistory",
    "dashboard_panels",
    "forget",
    "project_name",
    "window_values",
]

log = logging.getLogger(__name__)

STATUSES: tuple[str, ...] = ("ok", "warning", "drift", "insufficient_data")
TAB = "Drift history"
_IDS = uuid.UUID("6f1c2a53-2f7e-4c55-9a43-6b1f4b0d7e11")  # namespace of the panels' ids
#: The per-persona parts of persona_shift / persona_spread (monitor/judge.py), Holm-adjusted.
_PER_PERSONA = re.compile(r"^persona:(.+):(shift|spread)$")
_SUMMARY = "summary"  # the field whose widget is the window's text summary (never plotted)


def project_name(model_name: str) -> str:
    """The workspace project of one registered model (one place for the name)."""
    return f"persona-monitor {model_name}"


@dataclass(frozen=True)
class Value:
    field: str
    value: float
    title: str


def _neg_log10(p: float) -> float:
    return -math.log10(max(p, 1e-300))


def window_values(report: DriftReport) -> list[Value]:
    """The numbers of one window that the dashboard plots, from its DriftReport alone (so a
    window is recorded the same whichever way it was decided)."""
    values = [Value(f"status:{report.status}", 1.0, f"status {report.status}")]
    values.append(Value("events", float(report.event_count), "labelled events"))
    values.append(Value("model_version", float(report.model_version), "model version"))
    if report.mean_distance is not None:
        values.append(Value("mean_distance", report.mean_distance, "mean distance"))
    for persona, share in report.persona_mix.items():
        values.append(Value(f"mix:{persona}", share, f"share {persona}"))
    for test in report.tests:
        if test.name == "info:labelled_share" and test.statistic is not None:
            values.append(Value("labelled_share", test.statistic, "labelled share"))
        elif test.name == "evidently:dataset_drift" and test.statistic is not None:
            values.append(Value("evidently_drifted_share", test.statistic, "Evidently drifted"))
        elif (part := _PER_PERSONA.match(test.name)) and test.p_value is not None:
            persona, kind = part.group(1), part.group(2)
            values.append(
                Value(
                    f"persona_{kind}:{persona}",
                    _neg_log10(test.p_value),
                    f"{persona} {kind} −log10 adjusted p",
                )
            )
        elif ":" not in test.name and test.p_value is not None:
            values.append(
                Value(f"nlog10p:{test.name}", _neg_log10(test.p_value), f"{test.name} −log10 p")
            )
            if test.threshold is not None:
                values.append(
                    Value(
                        f"nlog10threshold:{test.name}",
                        _neg_log10(test.threshold),
                        f"{test.name} −log10 threshold",
                    )
                )
    return [v for v in values if math.isfinite(v.value)]


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3g}"


def _summary(report: DriftReport, full_report: str | None) -> str:
    lines = [
        f"**{report.window_id}**: `{report.status}`, {report.event_count} events, "
        f"model v{report.model_version}",
        "",
        f"{report.window_start.isoformat()} → {report.window_end.isoformat()}",
    ]
    calibrated = [t for t in report.tests if ":" not in t.name]
    if calibrated:
        lines += ["", "| test | p-value | threshold | failed |", "|---|---:|---:|---|"]
        lines += [
            f"| {t.name} | {_number(t.p_value)} | {_number(t.threshold)} | "
            f"{'**yes**' if t.failed else 'no'} |"
            for t in calibrated
        ]
    notes = [f"* {t.name[5:]}: {t.detail}" for t in report.tests if t.name.startswith("info:")]
    lines += ["", *notes] if notes else []
    if full_report is not None:
        lines += ["", f"[The full Evidently report of this window]({full_report})"]
    if report.report_uri:
        lines += ["", f"HTML report: `{report.report_uri}`"]
    return "\n".join(lines)


def _panel(title: str, kind: str, series: list[tuple[str, str]], **extra: Any) -> Any:
    """A dashboard panel whose id follows from its title, so a rewrite keeps the panels' ids."""
    from evidently.sdk.models import DashboardPanelPlot, PanelMetric

    params: dict[str, Any] = {"plot_type": kind, **extra}
    return DashboardPanelPlot(
        id=uuid.uuid5(_IDS, title),
        title=title,
        subtitle=extra.pop("subtitle", None),
        size=extra.pop("size", "full"),
        values=[
            PanelMetric(metric="WindowValue", metric_labels={"field": field}, legend=legend)
            for field, legend in series
        ],
        plot_params={k: v for k, v in params.items() if k not in ("subtitle", "size")},
    )


def dashboard_panels(fields: Iterable[str]) -> list[Any]:
    """The dashboard's panels for the fields recorded so far (personas and tests are named by the
    data: a persona a retrain adds gets its series when it first appears)."""
    known = set(fields)
    found = {f.split(":", 1)[1] for f in known if f.startswith("nlog10p:")}
    tests = [t for t in TEST_NAMES if t in found] + sorted(found - set(TEST_NAMES))
    personas = sorted(f.split(":", 1)[1] for f in known if f.startswith("mix:"))
    panels = [
        _panel(
            "Window status",
            "bar",
            [(f"status:{s}", s) for s in STATUSES],
            is_stacked=True,
            subtitle="one bar per closed window, coloured by its status",
        ),
        _panel(
            "Persona mix",
            "bar",
            [(f"mix:{p}", p) for p in personas],
            is_stacked=True,
            subtitle="share of the window's events labelled with each persona",
        ),
    ]
    for test in tests:
        panels.append(
            _panel(
                f"{test}: p-value against its threshold",
                "line",
                [
                    (f"nlog10p:{test}", "−log10 p-value"),
                    (f"nlog10threshold:{test}", "−log10 threshold (fails above)"),
                ],
                size="half",
                subtitle="−log10 scale: higher is more surprising; above the threshold the test "
                "fails",
            )
        )
    for kind in ("shift", "spread"):
        mine = sorted(f.split(":", 1)[1] for f in known if f.startswith(f"persona_{kind}:"))
        if mine:
            panels.append(
                _panel(
                    f"persona_{kind} per persona: adjusted p-value against the threshold",
                    "line",
                    [(f"persona_{kind}:{p}", p) for p in mine]
                    + [(f"nlog10threshold:persona_{kind}", "threshold (fails above)")],
                    size="half",
                    subtitle="−log10 of each persona's Holm-adjusted p-value: which persona moved",
                )
            )
    panels += [
        _panel(
            "Labelled share",
            "line",
            [("labelled_share", "labelled / survey responses")],
            size="half",
            subtitle="below 1: events lost to the DLQ or a stalled stream worker",
        ),
        _panel(
            "Model version",
            "line",
            [("model_version", "champion version judged against")],
            size="half",
            subtitle="a step is a hot swap",
        ),
        _panel(
            "Events per window",
            "bar",
            [("events", "labelled events")],
            size="half",
        ),
        _panel(
            "Mean distance to the assigned persona",
            "line",
            [("mean_distance", "mean distance")],
            size="half",
        ),
    ]
    return panels


def _plotted(dashboard: Any) -> set[str]:
    return {
        value.metric_labels["field"]
        for panel in dashboard.panels
        for value in panel.values
        if "field" in value.metric_labels
    }


def forget(path: Path, project: str) -> int:
    """Delete the projects named ``project`` from the workspace at ``path`` (a demo's clean slate;
    other projects stay); how many were deleted."""
    if not path.is_dir():
        return 0
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(path))
    found = workspace.search_project(project)
    for each in found:
        workspace.delete_project(each.id)
    return len(found)


class WindowHistory:
    """Records each decided window in the workspace at ``path``; never raises."""

    def __init__(self, path: Path, project: str) -> None:
        self.path = path
        self.project_name = project
        self._workspace: Any = None
        self._project_id: Any = None
        self._fields: set[str] = set()
        self._stale = True  # the dashboard is rewritten once per opening (a new version's layout)
        self.recorded = 0
        self.failures = 0

    def record(self, report: DriftReport, full: Any = None) -> bool:
        """Add the window (and its full Evidently snapshot ``full``, if it has one); False and a
        log line if the workspace could not take it."""
        try:
            self._record(report, full)
        except Exception as exc:
            self.failures += 1
            self._workspace = None  # open it again for the next window
            if self.failures == 1:
                log.exception("could not record window %s in %s", report.window_id, self.path)
            else:
                log.warning(
                    "could not record window %s in %s: %s: %s (%d failures so far)",
                    report.window_id,
                    self.path,
                    type(exc).__name__,
                    exc,
                    self.failures,
                )
            return False
        self.recorded += 1
        return True

    def _open(self) -> None:
        from evidently.ui.workspace import Workspace

        self.path.mkdir(parents=True, exist_ok=True)
        workspace = Workspace.create(str(self.path))
        found = workspace.search_project(self.project_name)
        project = (
            found[0]
            if found
            else workspace.create_project(
                self.project_name,
                description="Every closed window of the drift monitor (docs/monitor.md)",
            )
        )
        self._fields = _plotted(workspace.get_dashboard(project.id))  # the personas seen before
        self._stale = True
        self._workspace, self._project_id = workspace, project.id

    def _record(self, report: DriftReport, full: Any) -> None:
        if self._workspace is None:
            self._open()
        workspace, project_id = self._workspace, self._project_id
        full_link = None
        if full is not None:
            ref = workspace.add_run(project_id, full, name=f"{report.window_id} · Evidently report")
            full_link = f"/projects/{project_id}/reports/{ref.id}"
        values = window_values(report)
        snapshot = _snapshot(report, values, _summary(report, full_link), full_link)
        workspace.add_run(project_id, snapshot)
        fields = {v.field for v in values}
        if self._stale or not fields <= self._fields:
            self._fields |= fields
            self._stale = False
            from evidently.sdk.models import DashboardModel, DashboardTabModel

            panels = dashboard_panels(self._fields)
            tab = DashboardTabModel(
                id=uuid.uuid5(_IDS, TAB), title=TAB, panels=[p.id for p in panels]
            )
            workspace.save_dashboard(project_id, DashboardModel(tabs=[tab], panels=panels))


def _snapshot(report: DriftReport, values: list[Value], summary: str, full: str | None) -> Any:
    """A snapshot holding the window's own values: a one-row table, one metric per value."""
    import pandas as pd
    from evidently import Report

    from monitor.workspace_metric import WindowValue

    row = {v.field: [v.value] for v in values}
    row[_SUMMARY] = [float(report.event_count)]
    metrics = [WindowValue(field=_SUMMARY, title=summary, note=True)]
    metrics += [WindowValue(field=v.field, title=v.title) for v in values]
    return Report(metrics).run(
        pd.DataFrame(row),
        None,
        timestamp=report.window_start.replace(tzinfo=None),  # the x axis reads as the window id
        metadata={
            "window_id": report.window_id,
            "status": report.status,
            "model_version": str(report.model_version),
            "full_report": full or "",
        },
        tags=["window", report.status],
        name=report.window_id,
    )
