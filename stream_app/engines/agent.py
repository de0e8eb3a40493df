"""The agent engine: the labeller as a Faust agent over ``Stream.noack_take``, and its lag timer.

Kept beside the default batch engine (``engines/batch.py``) for deployments that want Faust's own
stream machinery; it is about a third as fast (docs/benchmarks/stream_app.md).

Commit semantics (read from faust-streaming 0.15.3, ``faust/streams.py``): ``Stream.take`` acks a
batch's events in a ``finally`` when the generator resumes, so an exception or a cancellation in the
agent body would ack a batch that was never written. We therefore iterate ``noack_take`` (same
batching, no acks at all) and ack each event ourselves, from the completion callback of its batch
(``Batcher``), i.e. only after ``BatchProcessor.process`` returned: Kafka acknowledged the labels
and dead letters and PostgreSQL committed the rows. Faust's consumer commits, every
``commit_interval``, the highest *contiguous* acknowledged offset per partition, so an
unacknowledged batch is re-delivered after a crash, and the sink's ``ON CONFLICT DO NOTHING``
absorbs the repeat. The SIGKILL integration tests prove it.

Readiness, the lag gauge, crashing and the shutdown grace are the runtime's (``runtime.py``, shared
with the batch engine); this module only calls them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from personas.errors import Stopping
from stream_app.engines.agent_batcher import Batcher
from stream_app.records import RawRecord
from stream_app.runtime import LAG_EVERY_SECONDS, Runtime

if TYPE_CHECKING:
    import faust

__all__ = ["AgentEngine", "attach"]


def _record(message: Any) -> RawRecord:
    timestamp = message.timestamp
    return RawRecord(
        key=message.key,
        value=message.value,
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=None if timestamp is None else int(timestamp * 1000),
    )


class AgentEngine:
    """The runtime's ``Engine`` for the agent: its batcher exists once Faust started the agent."""

    def __init__(self) -> None:
        self.batcher: Batcher | None = None

    async def drain(self, grace: float) -> bool:
        return True if self.batcher is None else await self.batcher.drain(grace)

    async def let_go(self) -> None:
        """Nothing to wait for here: the interrupted batch ends on the runtime's executor, which
        ``Runtime.close`` shuts down and waits for."""

    def unfinished(self) -> str | None:
        return None if self.batcher is None else self.batcher.unfinished()


def attach(app: faust.App, runtime: Runtime) -> AgentEngine:
    """Register the agent, the lag timer and the readiness signal."""
    settings, stream = runtime.settings, runtime.stream
    engine = AgentEngine()
    runtime.engine = engine
    topic = app.topic(
        settings.topics.responses,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,  # empty values must reach the DLQ, not vanish
    )

    @app.agent(topic, name="labeller")
    async def labeller(stream_: Any) -> None:
        loop = asyncio.get_running_loop()
        ack_tasks: set[asyncio.Task[None]] = set()

        def run(records: list[RawRecord]) -> asyncio.Future[Any]:
            return loop.run_in_executor(runtime.executor, runtime.processor.process, records)

        def on_durable(events: list[Any], records: list[RawRecord]) -> None:
            task = loop.create_task(_ack(stream_, events))
            ack_tasks.add(task)
            task.add_done_callback(ack_tasks.discard)
            runtime.note_done(records)

        def on_failure(exc: BaseException) -> None:
            if isinstance(exc, Stopping | asyncio.CancelledError):
                runtime.say_uncommitted()
            else:
                runtime.fail(exc)

        batcher = Batcher(
            run,
            on_durable,
            on_failure,
            max_batch=stream.max_batch,
            max_pending=stream.max_inflight * stream.max_batch,
        )
        engine.batcher = batcher
        try:
            async for events in stream_.noack_take(stream.max_batch, within=stream.batch_timeout):
                batcher.add(list(events), [_record(event.message) for event in events])
                await batcher.wait_capacity()
                if batcher.failure is not None:
                    return
        except asyncio.CancelledError:
            # Faust drains before it stops the agents (app.attach_runtime); this is for a stop
            # that came another way, and does nothing if the runtime already drained.
            await runtime.shutdown()
            raise

    @app.timer(LAG_EVERY_SECONDS, name="consumer_lag")  # type: ignore[untyped-decorator]
    async def consumer_lag() -> None:
        runtime.update_lag(app.consumer.assignment, app.consumer.highwater)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_partitions_revoked(sender: Any, revoked: Any, **_: Any) -> None:
        # Faust seeks a partition given back to us to the group's committed offset, which may be
        # below what we processed: a position kept from before would make the lag gauge read
        # low until we caught up again (the batch engine forgets in its own on_revoke).
        runtime.on_revoked(
            (tp.topic, tp.partition) for tp in revoked if tp.topic == settings.topics.responses
        )

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def on_rebalance_complete(sender: Any, **_: Any) -> None:
        runtime.on_assigned(
            tp.partition
            for tp in app.consumer.assignment()
            if tp.topic == settings.topics.responses
        )

    return engine


async def _ack(stream_: Any, events: list[Any]) -> None:
    for event in events:
        await stream_.ack(event)
