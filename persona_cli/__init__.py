"""The `persona` command: the one composition root that wires the services together.

It sits above every package (``personas/`` is the shared library and depends on no service; the
services depend on ``personas/`` and never on each other; only this package knows them all).
Each service exposes ``register(app)`` in its ``cli.py`` and adds its own commands; nothing is
imported from a service until the CLI is built, and heavy libraries load only inside commands.
Every PersonaError becomes one readable line on stderr and its exit code, never a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = ["build_app", "main"]

#: Packages whose ``cli.register(app)`` contributes commands, in help order.
COMMAND_PROVIDERS = ("infra", "producer", "stream_app", "monitor", "trainer", "serving")


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="persona",
        help=(
            "Persona Stream: label survey participants with marketing personas on Kafka, "
            "watch for drift, retrain and hot-swap. Settings come from PERSONA_* environment "
            "variables or .env (see .env.example)."
        ),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for package in COMMAND_PROVIDERS:
        module = importlib.import_module(f"{package}.cli")
        module.register(app)
    return app


def invalid_settings_line(exc: ValidationError) -> str:
    """One line naming each bad setting, e.g. ``invalid StreamSettings: engine: Input should be…``."""
    from personas.schemas import describe_errors

    return f"invalid {exc.title}: {describe_errors(exc, with_input=True, empty='value')}"


def main() -> None:

    from pydantic import ValidationError

    from personas.errors import PersonaError
    from personas.registry import bound_http_client
    from personas.settings import check_renamed

    # Every command names a dead MLflow within seconds; services replace these with their own
    # settings (stream worker, REST service); MLFLOW_HTTP_* in the environment win over both.
    bound_http_client(timeout_s=15, retries=2)

    try:
        check_renamed(os.environ)
        build_app()(standalone_mode=True)
    except PersonaError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except ValidationError as exc:  # a setting from the environment, .env or an option
        typer.secho(f"error: {invalid_settings_line(exc)}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
