"""The Faust application that hosts a worker, whichever engine consumes (engines/).

Faust runs the worker's lifecycle and signal handling, the web endpoint and the timers for both
engines; what an engine needs of the app beyond that, it sets itself (the batch engine switches
Faust's own Kafka clients off). ``attach_runtime`` gives the shared runtime its two ties to the
host: how to crash it, and the moment to drain at shutdown.

A factory rather than a module-level app: settings are built in the CLI, never at import time, and
tests run several apps with their own ids. Faust keeps its data dir under the stream state dir,
never in the working directory. ``processing_guarantee`` stays at-least-once on purpose: outputs
are made idempotent instead (faust's exactly_once has open bugs, docs/facts.md "Faust").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from personas.kafka import faust_broker
from personas.settings import Settings
from stream_app.runtime import Crash, Runtime
from stream_app.settings import StreamSettings

if TYPE_CHECKING:
    import faust

__all__ = ["attach_runtime", "build_app"]


def build_app(settings: Settings, stream: StreamSettings) -> faust.App:
    import faust

    state_dir = stream.resolved_state_dir(settings)
    app = faust.App(
        stream.resolved_app_id(settings),
        **faust_broker(settings),
        datadir=str(state_dir / "faust"),
        autodiscover=False,
        store="memory://",
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=stream.commit_interval,
        # Faust would otherwise wait, at shutdown and at every rebalance, until each message that
        # entered the agent is acked — forever when a batch can never be written (PostgreSQL
        # down): the runtime's drain (Runtime.shutdown, shutdown_grace) decides instead; an
        # unfinished batch stays unacked, so uncommitted (tests: SIGTERM during an outage, on both
        # engines).
        stream_wait_empty=False,
        # The take() buffer must be able to fill a whole batch from the stream buffer.
        stream_buffer_maxsize=max(4096, 2 * stream.max_batch),
        broker_max_poll_records=max(500, stream.max_batch),
        broker_session_timeout=stream.session_timeout,
        broker_heartbeat_interval=min(3.0, stream.session_timeout / 3),
        topic_replication_factor=settings.kafka_replication_factor,
        producer_acks=-1,
        web_enabled=True,
        web_host=stream.web_host,
        web_port=stream.web_port,
        web_bind=stream.web_host,
    )
    return app


def crasher(app: faust.App) -> Crash:
    """``app.crash`` from any thread (the batch engine fails on its own thread, the agent on the
    loop): Faust stops the worker with a non-zero exit code."""
    pending: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def crash(exc: BaseException) -> None:
        loop = app.loop

        def schedule() -> None:
            task = loop.create_task(app.crash(exc))
            pending.add(task)
            task.add_done_callback(pending.discard)

        loop.call_soon_threadsafe(schedule)

    return crash


def attach_runtime(app: faust.App, runtime: Runtime) -> None:
    """Tie the runtime to its host: crash through the app, drain the engine before Faust shuts
    down (after it stopped fetching, before it stops the agents)."""
    runtime.crash = crasher(app)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def drain_engine(sender: Any, **_: Any) -> None:
        await runtime.shutdown()
