"""`persona serve`: the REST prediction service (the seed's Gunicorn service, kept)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

__all__ = ["SERVE_HELP", "register"]

SERVE_HELP = (
    "Serve predictions over HTTP with Gunicorn, following the registry's champion alias.\n\n"
    "POST /predict labels one record or a batch (named x1..x10, or the positional form "
    '{"features": [...]}); GET /health, GET /model and GET /openapi.json describe it.\n\n'
    "A new champion is picked up without a restart: each worker polls the alias and is woken "
    "early by the model-updates topic. Other settings: PERSONA_SERVE_* (docs/serving.md)."
)


def serve_command(
    host: Annotated[
        str | None,
        typer.Option(help="Address to bind (env PERSONA_SERVE_HOST, default 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="HTTP port (env PERSONA_SERVE_PORT, default 9999).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Gunicorn worker processes (env PERSONA_SERVE_WORKERS, default 2)."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option(help="Threads per worker (env PERSONA_SERVE_THREADS, default 2).")
    ] = None,
    poll_interval: Annotated[
        float | None,
        typer.Option(
            help="Seconds between champion-alias checks (env PERSONA_SERVE_POLL_INTERVAL_S, default 5)."
        ),
    ] = None,
) -> None:
    """Serve predictions over HTTP with Gunicorn (help text: SERVE_HELP)."""
    from pydantic import ValidationError

    from personas.errors import ConfigError
    from personas.settings import Settings
    from serving.server import serve
    from serving.settings import ServeSettings

    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "threads": threads,
        "poll_interval_s": poll_interval,
    }
    try:
        serve_settings = ServeSettings.model_validate(
            {k: v for k, v in overrides.items() if v is not None}
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(f"serve setting {first['loc'][0]}: {first['msg']}") from None
    serve(Settings(), serve_settings)


def register(app: typer.Typer) -> None:
    """Add `persona serve` to the root CLI."""
    app.command("serve", help=SERVE_HELP)(serve_command)
