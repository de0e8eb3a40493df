"""The monitor service: consume labels (and responses), close windows, judge, store, publish.

Threads: the caller's thread runs the consumer loop (:class:`MonitorService`: poll, route, close
windows, commit); a single worker thread judges closed windows in order (:class:`WindowProcessor`:
tests, optional Evidently report, policy, PostgreSQL row, Kafka messages), so slow reports never
stall consumption and the policy sees windows in order.

Offsets are committed only below what is still needed: per (topic, partition) the smallest offset
held by an open or not-yet-published window, as personas/checkpoint.py computes it. A crash
re-reads those events and rebuilds the windows; a window already in drift_reports is not published
again (its stored decision is adopted). A row is committed before its messages are sent
(monitor/delivery.py): a crash in between is finished at the next start, and nothing already on
Kafka is sent twice.

Several instances: give each its own consumer group (``PERSONA_MONITOR_GROUP_ID``). Each reads every
partition, builds the same windows (event time, order-independent sampling) and races to insert the
window's drift_reports row; the winner publishes. One consumer group shared by several instances
would split a window's events between them and is not supported.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from operator import itemgetter, methodcaller
from typing import Any

import numpy as np

from monitor.counters import MonitorStats
from monitor.judge import warm_up
from monitor.metrics import MonitorMetrics
from monitor.processor import WindowProcessor
from monitor.reference import ChampionReference, ReferenceSource
from monitor.settings import MonitorSettings
from monitor.windows import (
    ClosedWindow,
    LabelRun,
    PairedWatermark,
    Source,
    Watermark,
    from_us,
    make_windower,
    micros,
)
from personas.checkpoint import Checkpoint
from personas.errors import Stopping
from personas.label_fast import LabelStruct, decode_label, decode_labels, from_model
from personas.metrics_endpoint import MetricsEndpoint, serve_metrics
from personas.schemas import DriftReport, PersonaLabel
from personas.settings import Settings

__all__ = ["MonitorService", "MonitorStats", "WindowProcessor", "run"]

log = logging.getLogger(__name__)


_value = methodcaller("value")
_partition = methodcaller("partition")
_offset = methodcaller("offset")
_error = methodcaller("error")
_topic = methodcaller("topic")
_timestamp = methodcaller("timestamp")
_created_ms = itemgetter(1)  # of (timestamp type, milliseconds); -1 when there is none


def _consumer_overrides(ms: MonitorSettings) -> dict[str, Any]:
    """The monitor's own consumer properties.

    ``fetch.wait.max.ms`` 50 (librdkafka: 500): at a partition's end the broker holds each fetch
    that long, and ``get_watermark_offsets(cached=False)`` (``_has_unread``, asked whenever the
    watermark is about to pass a partition at its end) waits behind it: ~450 ms a call against
    ~1.6 ms (docs/facts.md). Near the end of a replay, with some partitions done and others still
    read, that stalled the monitor at ~2,000 labels/s for 30 s and more."""
    return {
        "enable.partition.eof": True,
        "group.instance.id": ms.instance_id,
        "fetch.wait.max.ms": 50,
    }


def _observe_newest(
    clock: Watermark,
    topic: str,
    partitions: np.ndarray,
    us: np.ndarray,
    at: Callable[[int], datetime],
) -> None:
    """Tell ``clock`` each partition's newest event of a run (``at(i)``: event i's time)."""
    for p in np.unique(partitions).tolist():
        positions = np.flatnonzero(partitions == p)
        clock.observe((topic, p), at(int(positions[int(np.argmax(us[positions]))])))


def _crosses_a_thousand(before: int, after: int) -> bool:
    """Whether a counter going from ``before`` to ``after`` passed its first or a 1000th value
    (the cadence of the late and future warnings)."""
    return after > before and (before == 0 or before // 1000 != after // 1000)


class MonitorService:
    """One monitor instance's consumer loop, one method per step, its state as attributes.

    :meth:`run` = :meth:`start`, then :meth:`step` until ``stop`` is set, then :meth:`shutdown`.
    A step polls the consumer (:meth:`poll`), routes the batch (:meth:`route_all`: each run of
    consecutive labels or responses together, in columns, anything else one message at a time),
    closes the windows the watermark has passed and hands each to the judge thread (:meth:`close_windows`, :meth:`judge`: judging and delivery are
    :class:`WindowProcessor`'s), takes back the windows the judge thread finished
    (:meth:`collect`) and commits the offsets the checkpoint allows once a commit is due
    (:meth:`commit`).
    """

    def __init__(
        self,
        settings: Settings,
        ms: MonitorSettings,
        stop: threading.Event,
        *,
        reference: ReferenceSource | None = None,
        stats: MonitorStats | None = None,
    ) -> None:
        self.settings = settings
        self.ms = ms
        self.stop = stop
        self.stats = MonitorStats() if stats is None else stats
        self.reference = reference
        self.labels_topic = settings.topics.labels
        self.topics = [self.labels_topic] + (
            [settings.topics.responses] if ms.consume_responses else []
        )
        self.windower = make_windower(
            ms.window, origin=ms.window_origin, max_events=ms.max_window_events
        )
        idle = ms.idle_timeout_s
        self.label_clock = Watermark(ms.lateness, self._has_unread, idle_after=idle)
        self.response_clock = (
            Watermark(ms.lateness, self._has_unread, idle_after=idle)
            if ms.consume_responses
            else None
        )
        self.watermark = PairedWatermark(self.label_clock, self.response_clock)
        self.future_margin = timedelta(seconds=ms.future_margin_s)
        # Open windows hold their events (asked at commit time); a closed window holds its own,
        # under its sequence number, until the judge thread has published it.
        self.checkpoint = Checkpoint(ms.commit_interval_s, holders=[self.windower.held_offsets])
        self.inflight: deque[tuple[Future[DriftReport | None], int]] = deque()
        self.closed = 0  # windows closed so far (the key each is held under)
        # Read by the metrics scrape thread: plain references the loop replaces (value() itself
        # may ask the consumer, which only the loop's thread may touch).
        self.newest_event: datetime | None = None  # the latest submitted_at read (event time)
        self.last_watermark: datetime | None = None  # as of the last close_windows
        self.metrics = MonitorMetrics(
            self.stats,
            watermarks=lambda: (self.last_watermark, self.newest_event),
            open_windows=lambda: self.windower.open_windows,
        )
        self.metrics_endpoint: MetricsEndpoint | None = None
        # set by start()
        self.producer: Any = None
        self.processor: WindowProcessor | None = None
        self.consumer: Any = None
        self.executor: ThreadPoolExecutor | None = None
        self._eof_code: Any = None

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> MonitorStats:
        """Run until ``stop`` is set; offsets are committed on the way out unless it failed."""
        self.start()
        failed = False
        try:
            while not self.stop.is_set():
                self.step()
        except Stopping:
            pass
        except BaseException:
            failed = True
            self.stop.set()
            raise
        finally:
            self.shutdown(commit=not failed)
        return self.stats

    def start(self) -> None:
        """Check Kafka, migrate, finish interrupted deliveries, replay the policy, subscribe."""
        from confluent_kafka import Consumer, KafkaError, Producer

        from personas.db import apply_migrations
        from personas.doctor import require_kafka
        from personas.kafka import consumer_config, producer_config

        settings, ms = self.settings, self.ms
        require_kafka(settings, "monitor")
        apply_migrations(settings)
        self._eof_code = KafkaError._PARTITION_EOF
        self.producer = Producer(producer_config(settings, **{"linger.ms": 5}))
        self.processor = WindowProcessor(
            settings,
            ms,
            self.reference or ChampionReference(settings),
            self.producer,
            self.stop,
            self.stats,
            self.metrics,
        )
        self.metrics_endpoint = serve_metrics(
            self.metrics.registry,
            ms.metrics_host,
            ms.metrics_port,
            setting="PERSONA_MONITOR_METRICS_PORT",
        )
        restored = self.processor.restore(f"{self.windower.label}-")
        # Static membership (KIP-345): a restarted monitor (after a crash, a deploy) rejoins as
        # the same member and gets its partitions back at once; a dynamic member would wait for
        # the dead one's session to time out (45 s) before any window closes again.
        self.consumer = Consumer(consumer_config(settings, ms.group_id, **_consumer_overrides(ms)))
        self.consumer.subscribe(self.topics, on_assign=self._on_assign)
        log.info(
            "monitor %s: window %s, lateness %s, topics %s, group %s (%d stored windows replayed)",
            ms.instance_id,
            ms.window,
            ms.allowed_lateness,
            self.topics,
            ms.group_id,
            restored,
        )
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-judge")
        self.executor.submit(warm_up, ms)

    def step(self) -> None:
        self.route_all(self.poll())
        self.close_windows()
        self.collect()
        if self.checkpoint.due():
            self.commit()

    def shutdown(self, *, commit: bool) -> None:
        """Wait for the judge thread, commit what is durable (unless failing), close clients."""
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        while self.inflight and self.inflight[0][0].done():
            future, key = self.inflight[0]
            if future.exception() is not None:
                break  # that window and the ones after it stay held
            self.inflight.popleft()
            self.checkpoint.release(key)
        if commit:
            self.commit()
        self.consumer.close()
        self.producer.flush(10)
        if self.processor is not None:
            self.processor.close()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        log.info("monitor %s stopped: %s", self.ms.instance_id, self.stats)

    # ------------------------------------------------------------------ steps

    def poll(self) -> list[Any]:
        messages: list[Any] = self.consumer.consume(num_messages=1000, timeout=0.2)
        return messages

    def route_all(self, messages: list[Any]) -> None:
        """A consume batch, in order: each run of consecutive labels goes to :meth:`labels` in
        one piece (the per-label cost is what bounds the monitor's rate), every other message
        (a partition's EOF, an error, a response) to :meth:`route` between the runs."""
        topic = self.labels_topic
        if not messages:
            return
        if not any(map(_error, messages)):  # checked in C loops: the usual batch is one run
            if all(map(topic.__eq__, map(_topic, messages))):
                self.labels(messages)
                return
            if topic not in map(_topic, messages):
                self.responses(messages)
                return
        run: list[Any] = []
        is_label = True
        for msg in messages:
            if msg.error() is None:
                label = msg.topic() == topic
                if label is not is_label and run:
                    self._run(run, labels=is_label)
                    run = []
                is_label = label
                run.append(msg)
                continue
            if run:
                self._run(run, labels=is_label)
                run = []
            self.route(msg)
        if run:
            self._run(run, labels=is_label)

    def _run(self, messages: list[Any], *, labels: bool) -> None:
        if labels:
            self.labels(messages)
        else:
            self.responses(messages)

    def route(self, msg: Any) -> None:
        """One message: a partition's EOF, a consumer error, a label or a survey response."""
        source: Source = (str(msg.topic()), int(msg.partition()))
        err = msg.error()
        if err is not None:
            if err.code() != self._eof_code:
                log.warning("consumer error: %s", err)
            elif (clock := self._clock(source)) is not None:
                clock.eof(source)
            return
        self._run([msg], labels=source[0] == self.labels_topic)

    def labels(self, messages: list[Any]) -> None:
        """Consecutive label messages: decode (msgspec, pydantic for what it refuses), set the
        future ones aside, move the clocks, add the rest to their windows."""
        topic = self.labels_topic
        partitions, offsets = self._processed(topic, messages)
        values = list(map(_value, messages))
        decoded = decode_labels(values)
        if decoded is None:
            labels, times, kept = self._decode_each(values, partitions, offsets)
            partitions, offsets = partitions[kept], offsets[kept]
        else:
            labels, times = decoded
        if not labels:
            return
        run = LabelRun(labels, times, partitions, offsets, topic)
        latest = micros([datetime.now(UTC) + self.future_margin])[0]
        if (run.us > latest).any():
            first = int(np.flatnonzero(run.us > latest)[0])
            future = int((run.us > latest).sum())
            self._future(future, run.times[first], run.source(first), int(run.offsets[first]))
            run = run.take(np.flatnonzero(run.us <= latest))
            if not len(run):
                return
        self.stats.labels += len(run)
        us, times = run.us, run.times
        _observe_newest(self.label_clock, topic, run.partitions, us, times.__getitem__)
        newest = times[int(np.argmax(us))]
        if self.newest_event is None or newest > self.newest_event:
            self.newest_event = newest
        late = self.windower.add_labels(run)
        if len(late):
            self._late(run, late)

    def close_windows(self) -> None:
        """Every window the watermark has passed goes to the judge thread, in order."""
        self.last_watermark = self.watermark.value()
        for window in self.windower.advance(self.last_watermark):
            self.stats.windows += 1
            self.judge(window)

    def judge(self, window: ClosedWindow) -> None:
        """Hand a closed window to the judge thread; its offsets are held until it is published."""
        assert self.executor is not None and self.processor is not None, "start() first"
        self.closed += 1
        self.checkpoint.hold(self.closed, window.offsets)
        self.inflight.append((self.executor.submit(self.processor.process, window), self.closed))

    def collect(self) -> None:
        """Release the windows the judge thread has published; its failure is ours."""
        while self.inflight and self.inflight[0][0].done():
            future, key = self.inflight.popleft()
            error = future.exception()
            if error is not None:
                raise error
            self.checkpoint.release(key)

    def commit(self) -> None:
        self.checkpoint.commit(self.consumer)

    # ------------------------------------------------------------------ routing

    def _clock(self, source: Source) -> Watermark | None:
        return self.label_clock if source[0] == self.labels_topic else self.response_clock

    def responses(self, messages: list[Any]) -> None:
        """Consecutive survey responses, by their Kafka timestamps: set the future ones aside,
        move the responses' clock, count the rest in their windows (the labelled share)."""
        topic = str(messages[0].topic())
        partitions, offsets = self._processed(topic, messages)
        self.stats.responses += len(messages)
        if self.response_clock is None:
            return
        stamps = np.fromiter(
            map(_created_ms, map(_timestamp, messages)), dtype=np.int64, count=len(messages)
        )
        us = stamps * 1000
        latest = micros([datetime.now(UTC) + self.future_margin])[0]
        future = np.flatnonzero((stamps >= 0) & (us > latest))
        if len(future):
            first = int(future[0])
            source = (topic, int(partitions[first]))
            self._future(len(future), from_us(int(us[first])), source, int(offsets[first]))
        keep = (stamps >= 0) & (us <= latest)
        if not keep.all():
            us, partitions, offsets = us[keep], partitions[keep], offsets[keep]
            if not len(us):
                return
        _observe_newest(self.response_clock, topic, partitions, us, lambda i: from_us(int(us[i])))
        self.windower.add_responses(us, partitions, offsets, topic)

    def _processed(self, topic: str, messages: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """A run's partitions and offsets (arrays); each partition's newest offset is marked
        processed in the checkpoint."""
        n = len(messages)
        partitions = np.fromiter(map(_partition, messages), dtype=np.int64, count=n)
        offsets = np.fromiter(map(_offset, messages), dtype=np.int64, count=n)
        for p in np.unique(partitions).tolist():
            self.checkpoint.processed((topic, p), int(offsets[partitions == p].max()))
        return partitions, offsets

    def _decode_each(
        self, values: list[bytes | None], partitions: np.ndarray, offsets: np.ndarray
    ) -> tuple[list[LabelStruct], list[datetime], list[int]]:
        """A run with a label the fast path refused, label by label: pydantic decides those
        (accepted in another spelling, or counted and said invalid)."""
        labels: list[LabelStruct] = []
        times: list[datetime] = []
        kept: list[int] = []
        for i, value in enumerate(values):
            fast = decode_label(value)
            if fast is None:
                try:
                    model = PersonaLabel.model_validate_json(value or b"")
                    fast = from_model(model), model.submitted_at
                except ValueError as exc:  # pydantic's ValidationError is one too
                    self.stats.invalid += 1
                    source = (self.labels_topic, int(partitions[i]))
                    log.warning("skipping invalid label at %s@%d: %s", source, offsets[i], exc)
                    continue
            labels.append(fast[0])
            times.append(fast[1])
            kept.append(i)
        return labels, times, kept

    def _late(self, run: LabelRun, late: np.ndarray) -> None:
        stats = self.stats
        before = stats.late
        stats.late += len(late)
        if _crosses_a_thousand(before, stats.late):
            first = int(late[0])
            log.warning(
                "an event dated %s at %s@%d arrived after its window was reported: not judged,"
                " counted in the next report (info:late_events); %d so far",
                run.times[first].isoformat(),
                run.source(first),
                run.offsets[first],
                stats.late,
            )

    def _future(self, count: int, at: datetime, source: Source, offset: int) -> None:
        """``count`` events dated beyond the wall clock + margin (the first: ``at``, ``source``,
        ``offset``): counted, said, never observed."""
        before = self.stats.future
        self.stats.future += count
        if not _crosses_a_thousand(before, self.stats.future):
            return
        log.warning(
            "ignoring an event dated %s at %s@%d: beyond the clock + %s "
            "(PERSONA_MONITOR_FUTURE_MARGIN_S); %d so far",
            at.isoformat(),
            source,
            offset,
            self.future_margin,
            self.stats.future,
        )

    # ------------------------------------------------------------------ consumer callbacks

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.label_clock.assign(
            [(p.topic, p.partition) for p in partitions if p.topic == self.labels_topic]
        )
        if self.response_clock is not None:
            self.response_clock.assign(
                [(p.topic, p.partition) for p in partitions if p.topic != self.labels_topic]
            )

    def _has_unread(self, source: Source) -> bool:
        """Whether a partition at EOF has received messages since (asked of the broker, only when
        the watermark is about to move past it)."""
        from confluent_kafka import KafkaException, TopicPartition

        part = TopicPartition(source[0], source[1])
        try:
            _, high = self.consumer.get_watermark_offsets(part, timeout=5, cached=False)
            (at,) = self.consumer.position([part])
        except KafkaException:
            return True  # cannot tell: hold the watermark rather than close windows early
        position = self.checkpoint.position(source)
        position = at.offset if position is None else position
        return position >= 0 and int(high) > position


def run(
    settings: Settings,
    ms: MonitorSettings,
    stop: threading.Event,
    *,
    reference: ReferenceSource | None = None,
    stats: MonitorStats | None = None,
) -> MonitorStats:
    """Run until ``stop`` is set. ``reference`` defaults to the registry's champion; ``stats``
    (optional) is updated live, for callers that watch progress."""
    return MonitorService(settings, ms, stop, reference=reference, stats=stats).run()
