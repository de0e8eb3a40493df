"""`persona train bootstrap|explore|request|status` and `persona trainer` (the retrain service)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

train_app = typer.Typer(
    help="Persona model lifecycle: bootstrap from the vendor centroids, best-k experiment, "
    "manual retrain requests and the registry status.",
    no_args_is_help=True,
)


def _aware(value: datetime | None, option: str) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@train_app.command("bootstrap")
def bootstrap_cmd(
    reference: Annotated[
        Path | None,
        typer.Option(
            help="CSV/Parquet with columns x1..x10 (e.g. the January month the producer writes) "
            "used as the reference sample. Default: a synthetic sample, std 2.0 around each vendor "
            "centroid (PERSONA_TRAINER_BOOTSTRAP_ROWS/_STD/_SEED).",
        ),
    ] = None,
) -> None:
    """Register the vendor centroids as the first model version and point `champion` at it.

    Idempotent: if a bootstrap version exists nothing new is registered.
    """
    from personas.settings import Settings
    from trainer.bootstrap import bootstrap
    from trainer.data import read_table

    settings = Settings()
    frame = None if reference is None else read_table(reference)
    result = bootstrap(
        settings, frame, reference_label=str(reference) if reference else "dataframe"
    )
    what = "registered" if result.created else "already registered"
    typer.echo(f"{settings.model_name} version {result.version} {what} (vendor centroids)")
    if result.update is not None:
        typer.echo(
            f"alias '{settings.champion_alias}' -> version {result.version}; "
            f"ModelUpdated published on {settings.topics.model_updates}"
        )


@train_app.command("explore")
def explore_cmd(
    data: Annotated[
        Path | None, typer.Option(help="CSV/Parquet file with x1..x10 to explore.")
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(
            help="Instead of --data: labelled responses from PostgreSQL from this event "
            "time (inclusive; UTC if no offset)."
        ),
    ] = None,
    end: Annotated[
        datetime | None, typer.Option(help="End of the PostgreSQL range (exclusive).")
    ] = None,
    k_min: Annotated[int, typer.Option(help="Smallest k tried.")] = 2,
    k_max: Annotated[int, typer.Option(help="Largest k tried.")] = 8,
    no_mlflow: Annotated[
        bool, typer.Option("--no-mlflow", help="Only print the table; log nothing.")
    ] = False,
) -> None:
    """Best-k experiment: KMeans per k, nested MLflow runs, elbow plot, recommended k.

    Logs silhouette, Calinski-Harabasz, Davies-Bouldin and inertia for every k in one run each,
    nested under a parent run that holds the elbow/silhouette PNG and the recommendation.
    """
    from personas.errors import ConfigError
    from personas.settings import Settings
    from trainer.data import load_range, read_table
    from trainer.explore import explore
    from trainer.settings import TrainerSettings

    settings, ts = Settings(), TrainerSettings()
    if (data is None) == (start is None or end is None):
        raise ConfigError("give either --data FILE or both --start and --end")
    if data is not None:
        frame, label = read_table(data), data.name
    else:
        s, e = _aware(start, "--start"), _aware(end, "--end")
        assert s is not None and e is not None
        frame = load_range(settings, s, e, max_rows=ts.max_train_rows, seed=ts.seed)
        label = f"persona_labels {s.isoformat()}..{e.isoformat()}"
    result = explore(
        settings,
        frame,
        k_min=k_min,
        k_max=k_max,
        data_label=label,
        trainer_settings=ts,
        log_to_mlflow=not no_mlflow,
    )
    typer.echo(f"{'k':>3} {'silhouette':>10} {'calinski_h':>12} {'davies_b':>9} {'inertia':>12}")
    for s_ in result.scores:
        typer.echo(
            f"{s_.k:>3} {s_.silhouette:>10.4f} {s_.calinski_harabasz:>12.1f} "
            f"{s_.davies_bouldin:>9.4f} {s_.inertia:>12.1f}"
        )
    typer.echo(f"recommended k={result.recommended_k}: {result.reason}")
    if result.run_id:
        typer.echo(f"MLflow run {result.run_id} (experiment {ts.explore_experiment})")


@train_app.command("request")
def request_cmd(
    start: Annotated[datetime, typer.Option(help="Range start, event time (UTC if no offset).")],
    end: Annotated[datetime, typer.Option(help="Range end, exclusive.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the ledger and MLflow).")] = "manual",
) -> None:
    """Publish a RetrainCommand for an event-time range (what the monitor does on drift)."""
    import uuid

    from personas.errors import ConfigError
    from personas.schemas import RetrainCommand, utc_now
    from personas.settings import Settings
    from trainer.events import Publisher

    s, e = _aware(start, "--start"), _aware(end, "--end")
    assert s is not None and e is not None
    if e <= s:
        raise ConfigError("--end must be after --start")
    settings = Settings()
    cmd = RetrainCommand(
        command_id=uuid.uuid4(),
        range_start=s,
        range_end=e,
        reason=reason,
        requested_by="cli",
        requested_at=utc_now(),
    )
    with Publisher(settings) as pub:
        pub.publish(settings.topics.retrain, None, cmd)
    typer.echo(f"retrain command {cmd.command_id} published on {settings.topics.retrain}")


ACCEPT_HELP = (
    "Accept a held candidate persona: name it, refit the range with it, register, promote.\n\n"
    "A retrain that finds a group matching no persona is held (status candidate_persona, a "
    "TrainerAlert on drift-alerts, candidates.json in its MLflow run). This makes each candidate "
    "a new persona with the next free id and the given name; the champion's personas keep "
    "theirs. The quality gate applies. Stream workers accept the new ids (they refuse unknown "
    "ids otherwise). `persona train status` lists command ids."
)


@train_app.command("accept", help=ACCEPT_HELP)
def accept_cmd(
    command_id: Annotated[
        str,
        typer.Argument(help="Id of the retrain command held for a candidate persona."),
    ],
    name: Annotated[
        list[str],
        typer.Option(
            "--name",
            help="Name of the new persona; repeat once per candidate, in the order of the alert "
            "(candidates.json of the held run).",
        ),
    ],
) -> None:
    """Accept a held candidate persona (see ACCEPT_HELP)."""
    from uuid import UUID

    from personas.errors import ConfigError
    from personas.log import setup_logging
    from personas.settings import Settings
    from trainer.accept import accept_candidates

    try:
        parsed = UUID(command_id)
    except ValueError:
        raise ConfigError(f"not a command id (a UUID): {command_id!r}") from None
    setup_logging("WARNING")
    outcome = accept_candidates(Settings(), parsed, name)
    typer.echo(f"promoted version {outcome.version}: {outcome.reason}")


@train_app.command("status")
def status_cmd(
    last: Annotated[int, typer.Option(help="How many recent commands to list.")] = 10,
) -> None:
    """Show the champion version and the trainer's most recent decisions for PERSONA_MODEL_NAME
    (commands for other models sharing the schema are not listed)."""
    from personas import db
    from personas.registry import champion_version
    from personas.settings import Settings

    settings = Settings()
    typer.echo(f"{settings.model_name}@{settings.champion_alias}: {champion_version(settings)}")
    with db.connect(settings, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT received_at, command_id, status, version, range_start, range_end, detail"
            " FROM trainer_commands WHERE model_name = %s ORDER BY received_at DESC LIMIT %s",
            (settings.model_name, last),
        ).fetchall()
    for received, command_id, status, version, rs, re_, detail in rows:
        v = f"v{version}" if version is not None else "-"
        typer.echo(
            f"{received:%Y-%m-%d %H:%M:%S} {command_id} {status:<17} {v:<5} {rs:%Y-%m-%d %H:%M}.."
            f"{re_:%Y-%m-%d %H:%M} {detail or ''}"
        )


def trainer_cmd(
    max_commands: Annotated[
        int | None, typer.Option(help="Stop after this many commands (default: run until stopped).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Logging level.")] = "INFO",
) -> None:
    """Run the retraining service: consume retrain-commands, refit, gate, register, promote.

    Stops cleanly on SIGTERM/Ctrl-C after the command in hand.
    """
    import signal
    import threading

    from personas.log import setup_logging
    from personas.settings import Settings
    from trainer.service import run_trainer
    from trainer.settings import TrainerSettings

    setup_logging(log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_trainer(Settings(), TrainerSettings(), stop=stop, max_commands=max_commands)


def register(app: typer.Typer) -> None:
    """Add `persona train …` and `persona trainer` to the root CLI."""
    app.add_typer(train_app, name="train")
    app.command("trainer")(trainer_cmd)
