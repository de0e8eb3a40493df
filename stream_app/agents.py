"""The labeller agent, its timers and web views, attached to a Faust app.

Commit semantics (read from faust-streaming 0.15.3, ``faust/streams.py``): ``Stream.take`` acks a
batch's events in a ``finally`` when the generator resumes, so an exception or a cancellation in the
agent body would ack a batch that was never written. We therefore iterate ``noack_take`` (same
batching, no acks at all) and ack each event ourselves, only after ``BatchProcessor.process``
returned, i.e. after Kafka acknowledged the labels and dead letters and PostgreSQL committed the
rows. Faust's consumer commits, every ``commit_interval``, the highest *contiguous* acknowledged
offset per partition, so an unacknowledged batch is re-delivered after a crash, and the sink's
``ON CONFLICT DO NOTHING`` absorbs the repeat. The SIGKILL integration test proves it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any

from stream_app.labelling import RawRecord
from stream_app.sink import Stopping

if TYPE_CHECKING:
    import faust

    from stream_app.worker import Runtime

__all__ = ["attach"]

log = logging.getLogger(__name__)


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


def attach(app: faust.App, runtime: Runtime) -> None:
    """Register the agent, the lag timer, the readiness signal and /health, /metrics."""
    settings, stream = runtime.settings, runtime.stream
    topic = app.topic(
        settings.topics.responses,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,  # empty values must reach the DLQ, not vanish
    )

    @app.agent(topic, name="labeller")
    async def labeller(stream_: faust.StreamT) -> None:
        loop = asyncio.get_running_loop()
        inflight: deque[asyncio.Future[Any]] = deque()
        ack_tasks: set[asyncio.Task[None]] = set()

        def ack_when_durable(
            events: list[Any], records: list[RawRecord], future: asyncio.Future[Any]
        ) -> None:
            if not future.cancelled() and future.exception() is None:
                task = loop.create_task(_ack(stream_, events))
                ack_tasks.add(task)
                task.add_done_callback(ack_tasks.discard)
                runtime.note_done(records)

        try:
            async for events in stream_.noack_take(stream.max_batch, within=stream.batch_timeout):
                records = [_record(event.message) for event in events]
                # One worker thread, FIFO: batches become durable (and are acked) in order, while
                # the event loop goes on collecting the next batch.
                future = loop.run_in_executor(runtime.executor, runtime.processor.process, records)
                future.add_done_callback(partial(ack_when_durable, list(events), records))
                inflight.append(future)
                while inflight and (inflight[0].done() or len(inflight) >= stream.max_inflight):
                    await asyncio.shield(inflight[0])
                    inflight.popleft()
        except asyncio.CancelledError:
            await _finish(inflight, stream.shutdown_grace, runtime)
            raise
        except Stopping:
            log.info("stopping with %d batches left uncommitted", len(inflight))
        except Exception as exc:  # a bug, not an input problem: crash, restart re-delivers
            log.exception("batch failed unexpectedly; stopping the worker uncommitted")
            runtime.stop_event.set()
            await app.crash(exc)

    @app.timer(5.0, name="consumer_lag")
    async def consumer_lag() -> None:
        runtime.update_lag(app)

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(sender: Any, **_: Any) -> None:
        assigned = sorted(
            tp.partition
            for tp in app.consumer.assignment()
            if tp.topic == settings.topics.responses
        )
        runtime.assigned = assigned
        runtime.rebalanced = True
        runtime.log_ready()

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        state = runtime.health()
        return web.json(state, status=200 if state["ready"] else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(runtime.metrics.render(), content_type="text/plain; version=0.0.4")


async def _ack(stream_: Any, events: list[Any]) -> None:
    for event in events:
        await stream_.ack(event)


async def _finish(inflight: deque[asyncio.Future[Any]], grace: float, runtime: Runtime) -> None:
    """Stopping: give in-flight batches ``grace`` seconds; only durable ones get acked."""
    if not inflight:
        return
    _, pending = await asyncio.wait([asyncio.shield(f) for f in inflight], timeout=grace)
    if pending:
        runtime.stop_event.set()  # interrupts the sink/producer retry loops
        log.warning("%d in-flight batches not durable at shutdown: left uncommitted", len(pending))
    await asyncio.sleep(0)  # let the ack callbacks of finished batches run
