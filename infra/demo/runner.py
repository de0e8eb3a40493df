"""The main job, step by step: months generated, the model bootstrapped on January, the three
services started, the months replayed in event time, the story watched live, then summarised.

Each step is a `persona …` command, exactly what a user could run by hand (README "The demo by
hand").
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from infra.demo.live import LiveView, Observed
from infra.demo.scenario import DEFAULT_MONTHS, DemoMonth
from infra.demo.services import ChildService, persona_argv
from infra.demo.summary import plot, print_summary
from monitor.settings import MonitorSettings
from monitor.ui import ui_url
from monitor.workspace import forget, project_name
from personas import db
from personas.errors import ConfigError, PersonaError
from personas.kafka import admin_config, check_kafka, ensure_topics, topic_specs
from personas.settings import Settings, TopicNames, settings_env

__all__ = [
    "DemoOptions",
    "DemoResult",
    "demo_settings",
    "drop_namespace",
    "namespace_env",
    "reset_state",
    "run_demo",
]

_NAMESPACE = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def demo_settings(settings: Settings, namespace: str = "demo") -> Settings:
    """The demo's own names on the stack ``settings`` points at: topics ``<name>-<namespace>``,
    PostgreSQL schema ``<namespace>``, model ``persona-model-<namespace>``. Resetting them (the
    demo's clean slate) can never touch the topics, tables or model of the user's settings."""
    if not _NAMESPACE.match(namespace) or namespace == settings.pg_schema:
        raise ConfigError(
            f"demo namespace {namespace!r}: use lower-case letters, digits and _ (not the "
            f"schema {settings.pg_schema!r} of your settings)"
        )
    return settings.model_copy(
        update={
            "topics": TopicNames.private(namespace),
            "pg_schema": namespace,
            "model_name": f"persona-model-{namespace}",
        }
    )


def namespace_env(settings: Settings) -> str:
    """The lines of an env file that point `persona …` commands at the demo's names."""
    lines = [f"PERSONA_TOPIC_{k.upper()}={v}" for k, v in settings.topics.model_dump().items()]
    lines += [
        f"PERSONA_PG_SCHEMA={settings.pg_schema}",
        f"PERSONA_MODEL_NAME={settings.model_name}",
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DemoOptions:
    months: tuple[DemoMonth, ...] = DEFAULT_MONTHS
    events_per_month: int = 2000
    window: str = "7d"
    speed: float = 86_400.0  # a day of event time per second: four months in about two minutes
    out_dir: Path = Path("out/demo")
    reset: bool = True
    web_port: int = 6066
    settle_timeout: float = 120.0


@dataclass
class DemoResult:
    seen: Observed
    total_events: int
    pg_rows: int
    pg_distinct: int
    plot_path: Path | None


def _run(console: Console, argv: list[str], env: dict[str, str], what: str) -> None:
    console.print(f"[dim]$ persona {' '.join(argv[1:])}[/]")
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PersonaError(f"{what} failed: {(result.stderr or result.stdout).strip()[-600:]}")


def _delete_topics(settings: Settings) -> list[str]:
    """Delete the topics of ``settings`` that exist and wait until the broker has forgotten them;
    the names of all its topics."""
    from confluent_kafka.admin import AdminClient

    names = [s.name for s in topic_specs(settings)]
    admin = AdminClient(admin_config(settings))
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [n for n in names if n in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and set(doomed) & set(
            admin.list_topics(timeout=10).topics
        ):
            time.sleep(0.5)
    return names


def drop_namespace(settings: Settings, *, topics: bool = True) -> None:
    """Remove what a run in its own namespace left: its topics (unless ``topics`` is False, e.g.
    on a broker that goes away with the run), its PostgreSQL schema and its registered model.
    Best effort: a cleanup must not hide the result of the run it follows. Refuses the
    configured default names, so it can never drop a user's data."""
    import contextlib

    from mlflow.exceptions import MlflowException

    from personas.registry import client

    if settings.pg_schema == Settings.model_fields["pg_schema"].default:
        raise ConfigError(f"refusing to drop the default schema {settings.pg_schema!r}")
    if topics:
        with contextlib.suppress(Exception):
            _delete_topics(settings)
    with contextlib.suppress(Exception), db.connect(settings, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
    with contextlib.suppress(MlflowException, OSError):
        client(settings).delete_registered_model(settings.model_name)


def reset_state(settings: Settings, console: Console) -> None:
    """Start from a clean slate on the local stack: empty topics, empty app tables, no model."""
    names = _delete_topics(settings)
    for _ in range(20):  # deletion completes asynchronously on the broker
        try:
            ensure_topics(settings)
            break
        except PersonaError:
            time.sleep(1)
    db.apply_migrations(settings)
    with db.connect(settings) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename <> 'schema_migrations'",
                (settings.pg_schema,),
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))
        conn.commit()
    from mlflow.exceptions import MlflowException

    from personas.registry import client

    try:
        client(settings).delete_registered_model(settings.model_name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    console.print(
        f"reset: topics {', '.join(names)} recreated; tables emptied; "
        f"registered model {settings.model_name} removed"
    )


def _generate(
    options: DemoOptions, env: dict[str, str], console: Console
) -> tuple[list[Path], Path]:
    import pandas as pd

    data_dir = options.out_dir / "data"
    files = []
    for m in options.months:
        path = data_dir / f"{m.month}.parquet"
        _run(
            console,
            persona_argv(
                "generate",
                "--month",
                m.month,
                "--n",
                str(options.events_per_month),
                "--std",
                str(m.std),
                "--seed",
                str(m.seed),
                "--out",
                str(path),
                *m.scenario,
            ),
            env,
            f"generating {m.month}",
        )
        console.print(f"  {m.month}: {options.events_per_month:,} events, std {m.std} — {m.role}")
        files.append(path)
    everything = data_dir / "all-months.parquet"
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    frame.sort_values("submitted_at").to_parquet(everything, index=False)
    return files, everything


def run_demo(
    settings: Settings, options: DemoOptions, console: Console | None = None
) -> DemoResult:
    console = console or Console()
    env = settings_env(settings)
    suffix = uuid.uuid4().hex[:8]
    logs = options.out_dir / "logs"
    reports_dir = (options.out_dir / "reports").resolve()
    env["PERSONA_MONITOR_REPORTS_DIR"] = str(reports_dir)
    workspace = (options.out_dir / "workspace").resolve()  # the drift history, `persona ui`
    env["PERSONA_MONITOR_EVIDENTLY_WORKSPACE"] = str(workspace)
    # Group names under the prefixes of personas.access, so the demo runs on a secured cluster too.
    env["PERSONA_TRAINER_GROUP_ID"] = f"persona-trainer-{settings.pg_schema}-{suffix}"
    env["PERSONA_STREAM_STATE_DIR"] = str((options.out_dir / "stream-state").resolve())

    console.rule("1. the stack")
    check_kafka(settings)
    db.check_postgres(settings)
    console.print(
        f"Kafka {settings.kafka_bootstrap}, PostgreSQL {settings.pg_dsn(with_password=False)}, "
        f"MLflow {settings.tracking_uri}"
    )
    if options.reset:
        reset_state(settings, console)
        forget(workspace, project_name(settings.model_name))
    else:  # the demo's names may not exist yet on this stack
        ensure_topics(settings)
        db.apply_migrations(settings)

    console.rule("2. the months")
    files, everything = _generate(options, env, console)
    total = options.events_per_month * len(options.months)

    console.rule("3. the model: vendor centroids, January as reference")
    _run(
        console, persona_argv("train", "bootstrap", "--reference", str(files[0])), env, "bootstrap"
    )

    console.rule("4. the services")
    services = [
        ChildService(
            "stream",
            persona_argv(
                "stream",
                "--app-id",
                f"persona-stream-{settings.pg_schema}-{suffix}",
                "--web-port",
                str(options.web_port),
            ),
            logs / "stream.log",
            env,
        ),
        ChildService(
            "monitor",
            persona_argv(
                "monitor",
                "--window",
                options.window,
                "--group-id",
                f"persona-monitor-{settings.pg_schema}-{suffix}",
                "--reports",
                "non_ok",
            ),
            logs / "monitor.log",
            env,
        ),
        ChildService("trainer", persona_argv("trainer"), logs / "trainer.log", env),
    ]
    live = LiveView(settings, console)
    try:
        for service in services:
            service.start()
        services[0].wait_for_log("persona stream worker ready", 120)
        time.sleep(3)
        for service in services:
            service.check_alive()
        console.print(f"stream worker, monitor and trainer running; logs in {logs}")

        console.rule(
            f"5. replaying {len(options.months)} months at {options.speed:,.0f}× event time"
        )
        live.start()
        replay = ["replay", "--file", str(everything), "--quiet"]
        replay += (
            ["--speed", str(options.speed)] if options.speed > 0 else ["--as-fast-as-possible"]
        )
        _run(console, persona_argv(*replay), env, "replay")
        _settle(settings, live, services, total, options, console)
    finally:
        for service in services:
            service.stop()
        live.stop()

    console.rule("6. summary")
    seen = live.snapshot()
    plot_path = plot(seen, options.out_dir / "drift-and-mix.png", alpha=0.0025)
    print_summary(settings, seen, console, plot_path, reports_dir)
    rows, distinct = db.label_counts(settings)
    env_file = options.out_dir / "demo.env"
    env_file.write_text(
        namespace_env(settings) + f"PERSONA_MONITOR_EVIDENTLY_WORKSPACE={workspace}\n"
    )
    console.print(
        f"The demo's data is in its own names (topics {settings.topics.labels}, …; schema "
        f"{settings.pg_schema}; model {settings.model_name}); nothing else on the stack was "
        f"touched. Explore it: `set -a; . {env_file}; set +a`, then `persona tail labels`, "
        "`persona alerts`, the MLflow UI. Stop the stack with `make down`."
    )
    ui = MonitorSettings()
    start = (
        "`make ui`"
        if options.out_dir == Path("out/demo")
        else f"`persona ui --workspace {workspace}`"
    )
    console.print(
        f"The drift history in Evidently's UI (every window on a dashboard): {start}, then open "
        f"{ui_url(ui.ui_host, ui.ui_port)} → project '{project_name(settings.model_name)}'."
    )
    return DemoResult(seen, total, rows, distinct, plot_path)


def _settle(
    settings: Settings,
    live: LiveView,
    services: list[ChildService],
    total: int,
    options: DemoOptions,
    console: Console,
) -> None:
    """Wait until every event is labelled and stored, and the monitor has judged what it can."""
    deadline = time.monotonic() + options.settle_timeout
    stable_since, last_reports = time.monotonic(), -1
    while time.monotonic() < deadline:
        for service in services:
            service.check_alive()
        rows, _ = db.label_counts(settings)
        reports = len(live.snapshot().reports)
        if reports != last_reports:
            stable_since, last_reports = time.monotonic(), reports
        if (
            rows >= total
            and live.snapshot().labels >= total
            and time.monotonic() - stable_since > 8
        ):
            return
        time.sleep(1)
    console.print(
        f"[yellow]still settling after {options.settle_timeout:.0f} s; summarising what arrived[/]"
    )
