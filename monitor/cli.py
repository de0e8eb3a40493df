"""`persona monitor` (the drift monitor service), `persona alerts` (watch drift-alerts) and
`persona ui` (Evidently's UI on the monitor's drift history)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register"]


def _monitor_settings(overrides: dict[str, Any]) -> Any:
    from pydantic import ValidationError

    from monitor.settings import MonitorSettings
    from personas.errors import ConfigError

    try:
        return MonitorSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"monitor setting {where}: {first['msg']}") from None


def monitor(
    window: Annotated[
        str | None,
        typer.Option(help="Window size: 1h, 1d, 7d … (event time) or a number of events."),
    ] = None,
    lateness: Annotated[
        str | None, typer.Option(help="Allowed lateness in event time, e.g. 1h.")
    ] = None,
    instance_id: Annotated[
        str | None, typer.Option(help="Name of this instance (logs, drift_reports.decided_by).")
    ] = None,
    group_id: Annotated[
        str | None,
        typer.Option(help="Consumer group; give each instance its own (they dedupe in Postgres)."),
    ] = None,
    reports: Annotated[
        str | None, typer.Option(help="Evidently HTML reports for: never, non_ok or all windows.")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Watch persona-labels in event-time windows and report drift.

    Every closed window gets a DriftReport on the alerts topic and a drift_reports row; drift in
    consecutive windows sends one RetrainCommand per episode. Other settings: PERSONA_MONITOR_*
    (docs/monitor.md). Stop with Ctrl-C (open windows are re-read on the next start).
    """
    import signal
    import threading

    from monitor.service import run
    from personas.log import setup_logging
    from personas.settings import Settings

    setup_logging(log_level)
    ms = _monitor_settings(
        {
            "window": window,
            "allowed_lateness": lateness,
            "instance_id": instance_id,
            "group_id": group_id,
            "reports": reports,
        }
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stats = run(Settings(), ms, stop)
    typer.echo(
        f"monitor stopped: {stats.labels} labels, {stats.responses} responses, "
        f"{stats.windows} windows, {stats.published} reports, {stats.retrains} retrain commands"
    )


def alerts(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON message per line.")] = False,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Show the history first, not only new alerts.")
    ] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max", min=1, help="Exit after this many messages.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Exit after this many seconds.")
    ] = None,
) -> None:
    """Watch drift-alerts for a person: one coloured line per window, trainer alerts too.

    Green ok, yellow warning, red drift, grey insufficient data, magenta trainer alerts. Use
    --json for tools and --max/--timeout to bound it in scripts. Ctrl-C to stop.
    """
    from monitor.alerts import format_alert, watch
    from personas.settings import Settings

    def emit(raw: bytes, alert: Any) -> None:
        if as_json:
            typer.echo(raw.decode("utf-8", "replace") if alert is None else alert.model_dump_json())
            return
        if alert is None:
            typer.secho(f"(unreadable message) {raw[:120]!r}", fg="white", dim=True)
            return
        line, colour = format_alert(alert)
        typer.secho(line, fg=colour)

    try:
        count = watch(
            Settings(),
            from_beginning=from_beginning,
            max_messages=max_messages,
            timeout=timeout,
            emit=emit,
        )
    except KeyboardInterrupt:
        return
    if not as_json and count == 0:
        typer.secho("no alerts", dim=True, err=True)


def ui(
    workspace: Annotated[
        Path | None,
        typer.Option(help="The Evidently workspace (default PERSONA_MONITOR_EVIDENTLY_WORKSPACE)."),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Interface to serve on (default PERSONA_MONITOR_UI_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default PERSONA_MONITOR_UI_PORT, 8000).")
    ] = None,
) -> None:
    """Evidently's UI on the drift history: one project per model, a dashboard of every closed
    window (status, each calibrated test's p-value against its threshold, persona mix, labelled
    share, model version); click a point for that window's snapshot and its Evidently report.

    The monitor fills the workspace when PERSONA_MONITOR_EVIDENTLY_WORKSPACE is set (`make demo`
    sets it). Runs `evidently ui` until Ctrl-C; a missing workspace or a taken port is one line.
    """
    from monitor.ui import exec_ui

    ms = _monitor_settings({"ui_host": host, "ui_port": port})
    path = workspace or ms.evidently_workspace
    if path is None:
        from personas.errors import ConfigError

        raise ConfigError(
            "no workspace: pass --workspace DIR or set PERSONA_MONITOR_EVIDENTLY_WORKSPACE "
            "(the monitor records its windows there)"
        )
    exec_ui(path, ms.ui_host, ms.ui_port, say=typer.echo)


def register(app: typer.Typer) -> None:
    """Add `monitor`, `alerts` and `ui` to the root CLI."""
    app.command("monitor")(monitor)
    app.command("alerts")(alerts)
    app.command("ui")(ui)
