"""What both engines share while a worker runs: the pipeline, the model, readiness, the lag gauge,
and the one way to fail and the one way to stop.

An engine (``engines/batch.py``, ``engines/agent.py``) only consumes and acknowledges. It tells the
runtime when partitions are assigned (``on_assigned``), when a batch is durable (``note_done``),
what the high watermarks are (``update_lag``) and when something broke (``fail``); the host asks
the runtime to stop (``shutdown``, then ``close``). Written once here, so both engines log the same
readiness line, compute the same lag, crash the same way and give the in-flight batch the same
grace — they differed in small ways when each engine had its own copy.

This module imports no engine and no Faust (the engines and the web views import it), so the
runtime's type never needs a ``TYPE_CHECKING`` import of the module that builds it (worker.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from personas.champion import ChampionFollower, ChampionWatcher
from personas.checkpoint import Checkpoint
from personas.settings import Settings
from stream_app.metrics import StreamMetrics
from stream_app.pipeline import BatchProcessor
from stream_app.records import RawRecord, next_offsets
from stream_app.settings import StreamSettings

__all__ = ["LAG_EVERY_SECONDS", "READY_LINE", "Crash", "Engine", "Runtime"]

log = logging.getLogger("stream_app")

#: What tests, the demo and operators wait for (with ``GET /health`` → 200).
READY_LINE = "persona stream worker ready"

#: How often each engine refreshes the consumer-lag gauge.
LAG_EVERY_SECONDS = 5.0

#: Stop the worker because of ``exc`` (our bug, a fatal Kafka error); callable from any thread.
Crash = Callable[[BaseException], None]


class Engine(Protocol):
    """What the runtime asks of an engine when the worker stops."""

    async def drain(self, grace: float) -> bool:
        """Take no more input; wait up to ``grace`` s for the batch being written. True if all
        that was taken is durable (so acknowledged)."""
        ...

    async def let_go(self) -> None:
        """The stop event is set: wait (briefly) until the interrupted batch has given up."""
        ...

    def unfinished(self) -> str | None:
        """What was taken but is not durable, for the 'left uncommitted' warning; None if
        nothing is."""
        ...


def _no_host(exc: BaseException) -> None:
    raise RuntimeError("the runtime has no host to crash") from exc


@dataclass
class Runtime:
    """Everything an engine needs besides its own consumer; one per worker."""

    settings: Settings
    stream: StreamSettings
    metrics: StreamMetrics
    holder: ChampionFollower
    processor: BatchProcessor
    watcher: ChampionWatcher
    executor: ThreadPoolExecutor
    stop_event: threading.Event
    app_id: str
    #: How the host (the Faust app, ``app.attach_runtime``) is crashed.
    crash: Crash = _no_host
    #: The engine consuming for this worker (set by its ``attach``).
    engine: Engine | None = None
    assigned: list[int] = field(default_factory=list)
    rebalanced: bool = False
    #: Per (topic, partition), the offset after the newest durable record.
    #: What is durable and may be committed (the batch engine commits it; for the agent engine,
    #: whose offsets Faust commits, it feeds the lag gauge).
    checkpoint: Checkpoint = field(init=False)
    _said_uncommitted: bool = field(default=False, repr=False)
    _stopping: bool = field(default=False, repr=False)

    # ------------------------------------------------------------------ readiness

    def __post_init__(self) -> None:
        self.checkpoint = Checkpoint(self.stream.commit_interval)

    @property
    def ready(self) -> bool:
        return self.rebalanced and self.watcher.assigned.is_set()

    def on_assigned(self, partitions: Iterable[int]) -> None:
        """The group gave us these partitions of the input (a rebalance finished)."""
        self.assigned = sorted(partitions)
        self.rebalanced = True
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

    def on_revoked(self, keys: Iterable[tuple[str, int]]) -> None:
        """Partitions that are no longer ours: their offsets are the next owner's business."""
        self.checkpoint.forget(keys)
        self.assigned = []

    def health(self) -> dict[str, Any]:
        model = self.holder.current
        return {
            "ready": self.ready,
            "app_id": self.app_id,
            "engine": self.stream.engine,
            "partitions": self.assigned,
            "model_version": model.version,
            "model_source": self.holder.loaded.description,  # follows the swaps
            "refused_versions": sorted(self.holder.refused_versions),
        }

    # ------------------------------------------------------------------ progress

    def note_done(self, records: list[RawRecord]) -> None:
        """``records`` are durable (labels acknowledged, rows committed). Batches become durable
        in reading order, so nothing is held: the newest batch's offsets may be committed."""
        self.checkpoint.processed_up_to(next_offsets(records))

    def update_lag(
        self,
        assignment: Callable[[], Iterable[Any]],
        high_watermark: Callable[[Any], int | None],
    ) -> None:
        """Set the lag gauge of each assigned partition: high watermark − next offset to process.

        Each engine passes its own consumer's view (Faust's ``highwater``, librdkafka's cached
        watermarks); a partition with nothing durable yet, or no known watermark, is skipped."""
        try:
            partitions = list(assignment())
        except Exception:  # the consumer is not started, or stopping
            return
        gauge = self.metrics.consumer_lag
        for tp in partitions:
            done = self.checkpoint.position((tp.topic, tp.partition))
            if done is None:
                continue
            try:
                high = high_watermark(tp)
            except Exception:
                continue
            if high is not None and high >= 0:
                gauge.labels(partition=str(tp.partition)).set(max(0, high - done))

    # ------------------------------------------------------------------ failing and stopping

    def fail(self, exc: BaseException) -> None:
        """Our bug or a fatal Kafka error: stop every retry loop and crash the worker, committing
        nothing more (a restart re-delivers rather than skips)."""
        log.error("batch failed unexpectedly; stopping the worker uncommitted", exc_info=exc)
        self.stop_event.set()
        self.crash(exc)

    def say_uncommitted(self) -> None:
        """Say once, if the engine has work left undurable (so uncommitted) at shutdown."""
        if self._said_uncommitted or self.engine is None:
            return
        what = self.engine.unfinished()
        if what is not None:
            self._said_uncommitted = True
            log.warning("%s at shutdown: left uncommitted (Kafka delivers it again)", what)

    async def shutdown(self) -> None:
        """Give the in-flight batch ``shutdown_grace`` seconds to become durable; past that,
        interrupt it and leave it uncommitted. Once per worker, whoever asks first."""
        if self._stopping or self.engine is None:
            return
        self._stopping = True
        grace = self.stream.shutdown_grace
        log.info("stopping: finishing the in-flight batch (grace %.0fs)", grace)
        if await self.engine.drain(grace):
            return
        self.stop_event.set()  # interrupts the sink/producer retry loops
        self.say_uncommitted()
        await self.engine.let_go()

    def close(self) -> None:
        """Release everything, whatever way the worker ended."""
        self.say_uncommitted()  # the host may stop without asking the engine to drain
        self.stop_event.set()
        self.watcher.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.processor.output.close()
        self.processor.sink.close()
        log.info("persona stream worker stopped")
