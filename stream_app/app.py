"""The Faust application of the labeller (and nothing else: the engines live in ``engines/``).

A factory rather than a module-level app: settings are built in the CLI, never at import time, and
tests run several apps with their own ids. Faust keeps its data dir under the stream state dir,
never in the working directory. ``processing_guarantee`` stays at-least-once on purpose: outputs
are made idempotent instead (faust's exactly_once has open bugs, docs/facts.md "Faust").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from personas.kafka import faust_broker
from personas.settings import Settings
from stream_app.settings import StreamSettings

if TYPE_CHECKING:
    import faust

__all__ = ["build_app"]


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
        # down): the agent's own drain (shutdown_grace) decides instead; an unfinished batch stays
        # unacked, so uncommitted (tests: SIGTERM during an outage, on both engines).
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
    if stream.engine == "batch":
        from faust.app.base import BootStrategy

        # The batch engine consumes and produces with confluent-kafka itself; Faust's own consumer
        # would join the labellers' group with a protocol of its own. Web and timers stay.
        app.boot_strategy = BootStrategy(app, enable_kafka=False)
    return app
