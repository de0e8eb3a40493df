"""Run one stream worker: load the model, wire the outputs, pick the engine, start Faust.

The composition root: it builds the ``Runtime`` (runtime.py) and the Faust app (app.py) and
attaches the web views and one engine (engines/); nothing in stream_app imports it back but the
CLI. The readiness line (``runtime.READY_LINE``, and
``GET /health`` → 200) appears once the model is loaded, the model-updates follower is positioned
and the consumer group has assigned partitions; tests and the demo wait for it.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from personas.dead_letters import decode_source
from personas.settings import Settings
from stream_app.metrics import StreamMetrics
from stream_app.output import KafkaOutput
from stream_app.pipeline import BatchProcessor
from stream_app.runtime import Runtime
from stream_app.settings import StreamSettings
from stream_app.sink import PgSink
from stream_app.swap import follow_champion

__all__ = ["build_runtime", "run_worker"]

log = logging.getLogger("stream_app")


def build_runtime(settings: Settings, stream: StreamSettings) -> Runtime:
    """Load the model (registry → cache → vendor) and build outputs; touches no Faust."""
    state_dir = stream.resolved_state_dir(settings)
    state_dir.mkdir(parents=True, exist_ok=True)
    metrics = StreamMetrics()
    holder = follow_champion(settings, stream, metrics)
    holder.load()
    stop = threading.Event()
    sink = PgSink(settings, stop, max_backoff=stream.retry_max_backoff)

    def dropped(topic: str, headers: Any, why: str) -> None:
        where = decode_source(headers)
        log.error(
            "dead letter of %s could not be written to %s (%s): given up so the stream goes on; "
            "the original is still at that offset",
            where,
            topic,
            why,
        )
        metrics.dead_letters_dropped.inc()

    output = KafkaOutput(
        settings,
        stop,
        linger_ms=stream.producer_linger_ms,
        max_backoff=stream.retry_max_backoff,
        droppable=frozenset({settings.topics.dlq}),
        on_dropped=dropped,
    )
    processor = BatchProcessor(
        settings,
        holder,
        sink,
        output,
        metrics,
        stop,
        future_margin=timedelta(seconds=stream.future_margin_s),
    )
    processor.warm_up()
    watcher = holder.watcher
    return Runtime(
        settings=settings,
        stream=stream,
        metrics=metrics,
        holder=holder,
        processor=processor,
        watcher=watcher,
        executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch"),
        stop_event=stop,
        app_id=stream.resolved_app_id(settings),
    )


def _migrate(settings: Settings) -> None:
    """Apply pending migrations (idempotent); a PostgreSQL that is down is waited for later."""
    from personas import db
    from personas.errors import ServiceUnavailable

    try:
        applied = db.apply_migrations(settings)
    except ServiceUnavailable as exc:
        log.warning("%s; label rows will wait for it", exc)
        return
    if applied:
        log.info("applied migrations %s to schema %s", applied, settings.pg_schema)


def run_worker(settings: Settings, stream: StreamSettings) -> None:
    """Run until SIGTERM/SIGINT (Faust installs the handlers); returns after a clean stop."""
    import gc

    import faust

    from personas.registry import bound_http_client

    # A worker must start (from its cache) in seconds and its registry poll must not stall.
    bound_http_client(timeout_s=10, retries=1)

    from personas.doctor import require_kafka
    from stream_app.app import attach_runtime, build_app
    from stream_app.engines import agent, batch
    from stream_app.web import attach_web

    require_kafka(settings, "stream", with_optional=stream.engine == "agent")
    _migrate(settings)
    runtime = build_runtime(settings, stream)
    app = build_app(settings, stream)
    attach_runtime(app, runtime)
    attach_web(app, runtime)
    if stream.engine == "batch":
        batch.attach(app, runtime)
    else:
        agent.attach(app, runtime)
    runtime.watcher.start()

    # Everything loaded so far (faust, mlflow, pydantic schemas…) lives for the whole process:
    # move it out of the collector's reach so full collections don't pause the stream for tens
    # of milliseconds.
    gc.collect()
    gc.freeze()
    worker = faust.Worker(
        app,
        loglevel=stream.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        runtime.close()
