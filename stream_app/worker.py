"""Run one stream worker: load the model, wire the outputs, start Faust, stop cleanly.

The readiness line ``persona stream worker ready`` (and ``GET /health`` → 200) appears once the
model is loaded, the model-updates follower is positioned and the consumer group has assigned
partitions; tests and the demo wait for it.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from personas.champion import ChampionFollower, ChampionWatcher
from personas.dead_letters import decode_source
from personas.settings import Settings
from stream_app.labelling import RawRecord, next_offsets
from stream_app.metrics import StreamMetrics
from stream_app.output import KafkaOutput
from stream_app.pipeline import BatchProcessor
from stream_app.settings import StreamSettings
from stream_app.sink import PgSink
from stream_app.swap import follow_champion

__all__ = ["READY_LINE", "Runtime", "build_runtime", "run_worker"]

log = logging.getLogger("stream_app")

READY_LINE = "persona stream worker ready"


@dataclass
class Runtime:
    """Everything the agent needs besides Faust itself."""

    settings: Settings
    stream: StreamSettings
    metrics: StreamMetrics
    holder: ChampionFollower
    processor: BatchProcessor
    watcher: ChampionWatcher
    executor: ThreadPoolExecutor
    stop_event: threading.Event
    model_source: str
    app_id: str
    assigned: list[int] = field(default_factory=list)
    rebalanced: bool = False
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    batcher: Any = None

    @property
    def ready(self) -> bool:
        return self.rebalanced and self.watcher.assigned.is_set()

    def log_ready(self) -> None:
        if self.ready:
            log.info(
                "%s: group=%s partitions=%s model_version=%s web=http://%s:%s",
                READY_LINE,
                self.app_id,
                self.assigned,
                self.holder.current.version,
                self.stream.web_host,
                self.stream.web_port,
            )

    def note_done(self, records: list[RawRecord]) -> None:
        """Batches become durable in order, so the newest batch's offsets are the highest."""
        self.next_offsets.update(next_offsets(records))

    def update_lag(self, app: Any) -> None:
        try:
            assignment = app.consumer.assignment()
        except Exception:
            return
        for tp in assignment:
            try:
                high = app.consumer.highwater(tp)
            except Exception:
                continue
            if high is None:
                continue
            done = self.next_offsets.get((tp.topic, tp.partition))
            if done is None:
                continue
            self.metrics.consumer_lag.labels(partition=str(tp.partition)).set(max(0, high - done))

    def health(self) -> dict[str, Any]:
        model = self.holder.current
        return {
            "ready": self.ready,
            "app_id": self.app_id,
            "engine": self.stream.engine,
            "partitions": self.assigned,
            "model_version": model.version,
            "model_source": self.model_source,
            "refused_versions": sorted(self.holder.refused_versions),
        }


def build_runtime(settings: Settings, stream: StreamSettings) -> Runtime:
    """Load the model (registry → cache → vendor) and build outputs; touches no Faust."""
    state_dir = stream.resolved_state_dir(settings)
    state_dir.mkdir(parents=True, exist_ok=True)
    metrics = StreamMetrics()
    holder = follow_champion(settings, stream, metrics)
    source = holder.load().description
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
        model_source=source,
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
    from stream_app.agents import attach_agent
    from stream_app.app import build_app
    from stream_app.ingest import attach_ingest
    from stream_app.web import attach_web

    require_kafka(settings, "stream", with_optional=stream.engine == "agent")
    _migrate(settings)
    runtime = build_runtime(settings, stream)
    app = build_app(settings, stream)
    attach_web(app, runtime)
    if stream.engine == "batch":
        attach_ingest(app, runtime)
    else:
        attach_agent(app, runtime)

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def _on_shutdown(sender: Any, **_: Any) -> None:
            log.info("stopping: finishing the in-flight batch (grace %.0fs)", stream.shutdown_grace)

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
        batcher = runtime.batcher
        if batcher is not None and (batcher.busy or batcher.pending):
            # Faust may stop without cancelling the agent (its loop ends first): say it here.
            batcher.say_uncommitted()
        runtime.stop_event.set()
        runtime.watcher.stop()
        runtime.executor.shutdown(wait=True, cancel_futures=True)
        runtime.processor.output.close()
        runtime.processor.sink.close()
        log.info("persona stream worker stopped")
