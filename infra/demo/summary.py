"""The demo's closing summary (from PostgreSQL and the registry) and its plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from infra.demo.live import Observed
from personas import db
from personas.settings import Settings

__all__ = ["plot", "print_summary"]


#: Evidently's per-column results ride along in each DriftReport as information; the verdict
#: comes from the calibrated persona-frame tests (docs/monitor.md), which are what we show.
INFORMATIONAL_PREFIX = "evidently:"


def _verdict_tests(report: Any) -> list[Any]:
    return [t for t in report.tests if not t.name.startswith(INFORMATIONAL_PREFIX)]


def _per_month(settings: Settings) -> list[tuple[str, str, int]]:
    with db.connect(settings) as conn:
        return [
            (str(m), str(name), int(n))
            for m, name, n in conn.execute(
                "SELECT to_char(submitted_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month, persona_name, count(*)"
                " FROM persona_labels GROUP BY 1, 2 ORDER BY 1, 2"
            )
        ]


def _versions(settings: Settings) -> list[tuple[int, str, str, int]]:
    """(model version, first event time, first labelled at, labels) as seen in PostgreSQL."""
    with db.connect(settings) as conn:
        return [
            (int(v), f"{first_event:%Y-%m-%d %H:%M}", f"{first_label:%H:%M:%S}", int(n))
            for v, first_event, first_label, n in conn.execute(
                "SELECT model_version, min(submitted_at), min(labelled_at), count(*)"
                " FROM persona_labels GROUP BY 1 ORDER BY 1"
            )
        ]


def print_summary(
    settings: Settings,
    seen: Observed,
    console: Console,
    plot_path: Path | None,
    reports_dir: Path | None,
) -> None:
    months: dict[str, dict[str, int]] = defaultdict(dict)
    names: list[str] = []
    for month, name, n in _per_month(settings):
        months[month][name] = n
        if name not in names:
            names.append(name)
    table = Table(title="Events per persona per month (PostgreSQL persona_labels)")
    table.add_column("month")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("total", justify="right")
    for month, counts in sorted(months.items()):
        table.add_row(month, *(f"{counts.get(n, 0):,}" for n in names), f"{sum(counts.values()):,}")
    console.print(table)

    windows = Table(title="Windows (drift-alerts)")
    for col in ("window", "events", "model", "status", "failed tests"):
        windows.add_column(col)
    for r in sorted(seen.reports, key=lambda r: r.window_start):
        failed = ", ".join(t.name for t in _verdict_tests(r) if t.failed) or "-"
        windows.add_row(
            f"{r.window_start:%Y-%m-%d} → {r.window_end:%Y-%m-%d}",
            str(r.event_count),
            f"v{r.model_version}",
            r.status,
            failed,
        )
    console.print(windows)

    versions = Table(title="Model versions and when each took over")
    for col in ("version", "first event labelled", "at (wall clock)", "labels"):
        versions.add_column(col)
    for v, first_event, first_label, n in _versions(settings):
        versions.add_row(f"v{v}", first_event, first_label, f"{n:,}")
    console.print(versions)
    for alert in seen.trainer_alerts:
        console.print(f"trainer alert {alert.kind}: {alert.message}")

    rows, distinct = db.label_counts(settings)
    console.print(
        f"PostgreSQL: {rows:,} label rows, {distinct:,} distinct events "
        f"({'no duplicates' if rows == distinct else 'DUPLICATES'})"
    )
    console.print(f"MLflow UI (experiments, registry): {settings.tracking_uri}")
    console.print(
        f"Prometheus (metrics of every service, alerts): "
        f"http://{settings.prometheus_host}:{settings.prometheus_port}/alerts; "
        "`persona status` shows the live system on one screen"
    )
    if reports_dir is not None:
        console.print(f"Evidently reports of non-ok windows: {reports_dir}")
    if plot_path is not None:
        console.print(f"Plot of drift and persona mix over time: {plot_path}")


def plot(seen: Observed, path: Path, alpha: float | None = None) -> Path:
    """Two panels: each drift test's -log10 p per window (status shaded), persona mix per window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    reports = sorted(seen.reports, key=lambda r: r.window_start)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    colours = {
        "ok": "#d8f0d8",
        "warning": "#fff2c0",
        "drift": "#f7c8c8",
        "insufficient_data": "#eeeeee",
    }
    series: dict[str, list[tuple[Any, float]]] = defaultdict(list)
    for r in reports:
        ax1.axvspan(r.window_start, r.window_end, color=colours.get(r.status, "white"), lw=0)
        mid = r.window_start + (r.window_end - r.window_start) / 2
        for t in _verdict_tests(r):
            # the verdict's tests only: not the per-persona parts (persona:<name>:…)
            if t.p_value is not None and ":" not in t.name:
                series[t.name].append((mid, -np.log10(max(t.p_value, 1e-300))))
    for name, points in sorted(series.items()):
        xs, ys = zip(*points, strict=True)
        ax1.plot(xs, np.minimum(ys, 30), marker="o", ms=3, label=name)
    if alpha:
        ax1.axhline(-np.log10(alpha), color="black", ls="--", lw=1, label=f"α = {alpha}")
    top = 31.0
    ax1.set_ylim(-0.5, top + 3)
    for version, when in sorted(seen.first_event_time_by_version.items()):
        ax1.axvline(when, color="purple", lw=1.5)
        ax1.text(when, top, f" labels by v{version}", color="purple", fontsize=8)
    ax1.set_ylabel("−log10 p (capped at 30)")
    ax1.set_title("Drift tests per event-time window (shade: green ok, yellow warning, red drift)")
    ax1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))

    names = sorted({n for r in reports for n in r.persona_mix})
    bottom = np.zeros(len(reports))
    for name in names:
        shares = np.array([r.persona_mix.get(name, 0.0) for r in reports])
        starts = [r.window_start for r in reports]
        widths = [(r.window_end - r.window_start) * 0.9 for r in reports]
        ax2.bar(starts, shares, width=widths, bottom=bottom, align="edge", label=name)
        bottom += shares
    ax2.set_ylabel("share of window")
    ax2.set_title("Persona mix per window")
    ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
