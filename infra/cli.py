"""`persona stack …`, `persona db migrate`, `persona topics create`, `persona schemas export`,
`persona config env-example`: operating the local stack and the project's contracts."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

stack_app = typer.Typer(
    help="Run the local stack without Docker: Kafka (KRaft), PostgreSQL and MLflow.",
    no_args_is_help=True,
)


class Profile(StrEnum):
    default = "default"
    cluster = "cluster"


ProfileOption = Annotated[
    Profile,
    typer.Option(
        "--profile",
        envvar="PERSONA_STACK_PROFILE",
        help="default: one broker, PostgreSQL, MLflow. cluster: three SASL_SSL Kafka nodes with "
        "ACLs, TLS-only PostgreSQL, authenticated MLflow (docs/cluster.md).",
    ),
]


@stack_app.command("up")
def stack_up(profile: ProfileOption = Profile.default) -> None:
    """Install what is missing and start Kafka, PostgreSQL and MLflow (idempotent).

    The first start fetches the Kafka jars with Maven and may install PostgreSQL with apt-get.
    With --profile cluster, a node that died is started again.
    """
    from infra.stack import runner
    from personas.settings import Settings

    runner.up(Settings(), say=typer.echo, profile=profile.value)
    flag = "" if profile is Profile.default else f" --profile {profile.value}"
    typer.echo(
        f"stack is up; `persona stack status{flag}` shows it, `persona stack down{flag}` stops it"
    )


@stack_app.command("down")
def stack_down(profile: ProfileOption = Profile.default) -> None:
    """Stop exactly the processes `stack up` started (by PID file); nothing else."""
    from infra.stack import runner
    from personas.settings import Settings

    runner.down(Settings(), say=typer.echo, profile=profile.value)


@stack_app.command("status")
def stack_status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 unless every service answers.")
    ] = False,
    profile: ProfileOption = Profile.default,
) -> None:
    """Show each service, its address, its PID and whether it answers."""
    from infra.stack import runner
    from personas.settings import Settings

    settings = Settings()
    rows = runner.status(settings, profile=profile.value)
    if as_json:
        client = settings
        if profile is Profile.cluster:
            from infra.stack.cluster import Cluster

            client = Cluster(settings).settings()
        typer.echo(
            json.dumps(
                {
                    "profile": profile.value,
                    "services": [r.as_dict() for r in rows],
                    "kafka_bootstrap": client.kafka_bootstrap,
                    "postgres_dsn": next(r.address for r in rows if r.name == "postgres"),
                    "mlflow_tracking_uri": client.tracking_uri,
                    "prometheus_url": (
                        f"http://{client.prometheus_host}:{client.prometheus_port}"
                        if profile.value == "default"
                        else None
                    ),
                },
                indent=2,
            )
        )
    else:
        for r in rows:
            state = "up" if r.answers else ("running, not answering" if r.pid else "down")
            colour = typer.colors.GREEN if r.answers else typer.colors.RED
            typer.echo(
                f"{r.name:<9} {typer.style(state, fg=colour):<20} {r.address:<40} "
                f"pid={r.pid or '-'}  {r.detail}"
            )
    if check and not all(r.answers for r in rows if r.required):
        raise typer.Exit(1)


db_app = typer.Typer(help="Application database.", no_args_is_help=True)


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending SQL migrations (infra/migrations) to the configured schema."""
    from personas import db
    from personas.settings import Settings

    settings = Settings()
    applied = db.apply_migrations(settings)
    typer.echo(f"{settings.pg_schema}: " + (", ".join(applied) if applied else "up to date"))


topics_app = typer.Typer(help="Kafka topics of the contract.", no_args_is_help=True)


@topics_app.command("create")
def topics_create(
    fix_configs: Annotated[
        bool,
        typer.Option(
            "--fix-configs",
            help="Also set the configs (retention, max.message.bytes, …) of existing topics to "
            "the settings'; partitions and replication are never changed.",
        ),
    ] = False,
) -> None:
    """Create the six topics that are missing, with the configured partitions, replication factor
    (PERSONA_KAFKA_REPLICATION_FACTOR) and min.insync.replicas (PERSONA_KAFKA_MIN_INSYNC_REPLICAS).

    Topics that already exist are not changed (unless --fix-configs: then their configs are);
    those whose partitions, replication factor or configs differ from the settings are listed,
    and the command then exits 1. On a secured cluster run it as a user allowed to create
    topics and alter their configs (an admin).
    """
    from personas.kafka import create_topics
    from personas.settings import Settings

    settings = Settings()
    created, drift = create_topics(settings, fix_configs=fix_configs)
    typer.echo("created: " + (", ".join(created) if created else "nothing (all exist)"))
    for topic in drift:
        typer.secho(f"differs: {topic}", fg=typer.colors.YELLOW, err=True)
    if drift:
        raise typer.Exit(1)


schemas_app = typer.Typer(help="Event schemas of the topics.", no_args_is_help=True)


@schemas_app.command("export")
def schemas_export(
    out: Annotated[Path, typer.Argument(help="Folder for one JSON Schema file per topic.")] = Path(
        "docs/schemas"
    ),
) -> None:
    """Write the JSON Schema of every topic's messages (for teams that consume them)."""
    from personas.schema_export import write_schemas

    for path in write_schemas(out):
        typer.echo(str(path))


config_app = typer.Typer(help="Settings.", no_args_is_help=True)


@config_app.command("env-example")
def config_env_example(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print every PERSONA_* variable with its default and meaning (the source of .env.example)."""
    from infra.env_example import render_env_example

    text = render_env_example()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)


def demo(
    events_per_month: Annotated[
        int, typer.Option(help="Survey events generated per month.")
    ] = 2000,
    speed: Annotated[
        float,
        typer.Option(help="Event time per wall time (86400 = a day a second); 0 = no pacing."),
    ] = 86_400.0,
    window: Annotated[str, typer.Option(help="Monitor window in event time (e.g. 7d).")] = "7d",
    out: Annotated[Path, typer.Option(help="Folder for data, logs, reports and the plot.")] = Path(
        "out/demo"
    ),
    reset: Annotated[
        bool,
        typer.Option(
            help="Start clean: recreate the demo's topics, empty its tables, drop its model."
        ),
    ] = True,
    namespace: Annotated[
        str,
        typer.Option(
            help="The demo's own names: topics <name>-NS, PostgreSQL schema NS, model "
            "persona-model-NS. Nothing outside them is read or changed."
        ),
    ] = "demo",
    web_port: Annotated[
        int, typer.Option(help="Port of the stream worker's /health, /metrics.")
    ] = 6066,
) -> None:
    """The main job: four months replayed through the live pipeline — labels, a drift alert,
    a retrain and a hot swap — then a summary and a plot. Needs the stack (`make up`).

    It runs in a namespace of its own (--namespace): its topics, schema and registered model;
    --reset (the default) empties those and nothing else, so your data on the same stack is safe.
    """
    from infra.demo.runner import DemoOptions, demo_settings, run_demo
    from personas.settings import Settings

    options = DemoOptions(
        events_per_month=events_per_month,
        speed=speed,
        window=window,
        out_dir=out,
        reset=reset,
        web_port=web_port,
    )
    run_demo(demo_settings(Settings(), namespace), options)


def soak(
    minutes: Annotated[
        float, typer.Option(help="How long events flow (the replay's length), minutes.", min=1)
    ] = 20.0,
    rate: Annotated[float, typer.Option(help="Events per second, steady.", min=1)] = 50.0,
    rounds: Annotated[
        int | None,
        typer.Option(help="Times each fault is injected (default: one per 10 minutes).", min=1),
    ] = None,
    pg_outage: Annotated[
        float, typer.Option(help="Seconds PostgreSQL stays unreachable per outage.", min=1)
    ] = 30.0,
    seed: Annotated[int, typer.Option(help="Seed of the data and of the fault times.")] = 7,
    out: Annotated[Path, typer.Option(help="Folder for the run's data, logs and result.")] = Path(
        "out/soak"
    ),
    keep: Annotated[
        bool, typer.Option(help="Keep the run's PostgreSQL schema and registered model.")
    ] = False,
) -> None:
    """The whole loop at a steady rate with faults at random instants — worker, monitor and
    trainer SIGKILLed, the broker SIGKILLed and restarted, PostgreSQL unreachable — then an
    accounting: published = rows = labels, each window once, one command per episode, RSS.
    Needs PostgreSQL and MLflow (`make up`); brings its own broker. Exit 1 if anything failed.
    See docs/reliability.md.
    """
    from infra.soak import SoakOptions, run_soak
    from personas.log import setup_logging
    from personas.settings import Settings

    setup_logging("WARNING")
    options = SoakOptions(
        minutes=minutes, rate=rate, seed=seed, out_dir=out, pg_outage_s=pg_outage,
        rounds=rounds, keep=keep,
    )  # fmt: skip
    result = run_soak(Settings(), options, say=typer.echo)
    typer.echo(f"result: {out / result.run / 'result.json'}")
    if not result.held:
        raise typer.Exit(1)


def doctor(
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            "-s",
            help="Check the Kafka ACLs of this service only (producer, stream, monitor, trainer, "
            "serve; repeatable). Default: all of them.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document, for tools.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds each check may take.", min=0.5)] = 5.0,
) -> None:
    """Check every configured service: Kafka (reachable, TLS verified, authenticated, authorised
    for the service's topics and groups, topics present with their partitions and replication),
    PostgreSQL (reachable, TLS, authenticated, schema migrated) and MLflow (reachable,
    authenticated, champion registered). One line each; exit 0 only if every check holds.

    It uses the same settings as the services (PERSONA_* variables, .env): run it with the
    environment a service will run with, e.g. that service's Kafka user and --service.
    """
    import json

    from personas.access import SERVICES
    from personas.doctor import diagnose
    from personas.settings import Settings

    settings = Settings()
    chosen = service or list(SERVICES)

    def show(check: object) -> None:
        from personas.doctor import Check

        assert isinstance(check, Check)
        colour = {"ok": typer.colors.GREEN, "fail": typer.colors.RED, "note": None}[check.status]
        typer.secho(check.line(), fg=colour)

    checks = diagnose(settings, chosen, timeout=timeout, on_check=None if as_json else show)
    failed = [c for c in checks if not c.ok]
    if as_json:
        typer.echo(json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]}))
    else:
        typer.echo(
            f"{len(checks) - len(failed)} of {len(checks)} checks hold"
            + (f"; {len(failed)} failed" if failed else "")
        )
    if failed:
        raise typer.Exit(1)


def system_status(
    watch: Annotated[
        float | None,
        typer.Option(
            "--watch",
            "-w",
            min=1.0,
            help="Refresh every this many seconds until Ctrl-C (e.g. --watch 5).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document, for tools.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds each source may take.", min=0.5)] = 5.0,
) -> None:
    """The live system on one screen: each service up or down (the stream workers, monitor and
    trainer from their Kafka consumer groups, the REST service from /health), the workers and
    their partitions, consumer lag, the champion version and since when, the last windows and
    their status, dead letters in the last hour, open retrain commands.

    Read from Kafka, MLflow and PostgreSQL directly (no Prometheus needed); a source that is down
    is named on the screen and the rest still shows. Not the stack's processes: that is
    `persona stack status`.
    """
    import time

    from infra.status import collect, render
    from personas.settings import Settings

    settings = Settings()
    palette = {"green": typer.colors.GREEN, "red": typer.colors.RED, "yellow": typer.colors.YELLOW}

    def colour(text: str, name: str) -> str:
        return typer.style(text, fg=palette[name])

    try:
        while True:
            status = collect(settings, timeout=timeout)
            if as_json:
                typer.echo(json.dumps(status.as_dict()))
            else:
                if watch is not None:
                    typer.echo("\x1b[H\x1b[2J", nl=False)  # clear the screen, cursor home
                typer.echo(render(status, colour=colour))
            if watch is None:
                return
            time.sleep(watch)
    except KeyboardInterrupt:
        return


def register(app: typer.Typer) -> None:
    app.command("status")(system_status)
    app.command("demo")(demo)
    app.command("doctor")(doctor)
    app.command("soak")(soak)
    app.add_typer(stack_app, name="stack")
    app.add_typer(db_app, name="db")
    app.add_typer(topics_app, name="topics")
    app.add_typer(schemas_app, name="schemas")
    app.add_typer(config_app, name="config")
