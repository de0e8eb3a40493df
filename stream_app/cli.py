"""`persona stream`: start one labelling worker (run several processes for several workers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["HELP", "register", "stream"]

HELP = (
    "Label survey responses with the champion persona model, continuously.\n\n"
    "Consumes the survey-responses topic, validates each event (invalid ones go to the DLQ with "
    "the reason), labels them in batches with the registry champion, writes labels to "
    "persona-labels and PostgreSQL (persona_labels, once per event) and hot-swaps the model on "
    "model-updates.\n\n"
    "The worker is a Faust app; by default (--engine batch) it consumes with a confluent-kafka "
    "loop inside it, which is about three times faster than a Faust agent (--engine agent).\n\n"
    "One worker per process: start several with distinct --web-port to share the partitions. "
    "Ready when it logs 'persona stream worker ready' (GET /health → 200); metrics at /metrics. "
    "Stops cleanly on SIGTERM/SIGINT. Settings: PERSONA_* and PERSONA_STREAM_* (docs/stream_app.md)."
)


def stream(
    web_port: Annotated[
        int | None,
        typer.Option(help="Port of /health and /metrics; give each worker its own. [6066]"),
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(help="DEBUG, INFO, WARNING or ERROR. [INFO]")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Most events per labelled batch. [10000]", min=1)
    ] = None,
    batch_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds to wait for a batch to fill before labelling it. [0.005]"),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="batch (confluent-kafka consume loop in the Faust worker) or agent (a Faust agent). [batch]"
        ),
    ] = None,
    app_id: Annotated[
        str | None,
        typer.Option(help="Faust app id / consumer group (workers of one group share input)."),
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Faust data dir and model cache. [.cache/stream_app]")
    ] = None,
) -> None:
    """Label survey responses with the champion persona model, continuously (see HELP)."""
    import logging

    from personas.log import setup_logging
    from personas.settings import Settings
    from stream_app.settings import StreamSettings
    from stream_app.worker import run_worker

    overrides: dict[str, Any] = {
        "web_port": web_port,
        "log_level": log_level.upper() if log_level else None,
        "max_batch": batch_size,
        "engine": engine.lower() if engine else None,
        "batch_timeout": batch_timeout,
        "app_id": app_id,
        "state_dir": state_dir,
    }
    stream_settings = StreamSettings(**{k: v for k, v in overrides.items() if v is not None})
    setup_logging(stream_settings.log_level)
    if stream_settings.log_level != "DEBUG":
        for noisy in ("faust", "mode", "aiokafka", "aiohttp"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    run_worker(Settings(), stream_settings)


def register(app: typer.Typer) -> None:
    """Add `persona stream` to the root CLI."""
    app.command("stream", help=HELP)(stream)
