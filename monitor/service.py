"""The monitor service: consume labels (and responses), close windows, judge, store, publish.

Threads: the caller's thread runs the consumer loop (poll, parse, window, commit); a single worker
thread judges closed windows in order (tests, optional Evidently report, policy, PostgreSQL row,
Kafka messages), so slow reports never stall consumption and the policy sees windows in order.

Offsets are committed only below what is still needed: per (topic, partition) the smallest offset
held by an open or not-yet-published window. A crash re-reads those events and rebuilds the windows;
a window already in drift_reports is not published again (its stored decision is adopted). A row is
committed before its messages are sent (monitor/delivery.py): a crash in between is finished at the
next start, and nothing already on Kafka is sent twice.

Several instances: give each its own consumer group (``PERSONA_MONITOR_GROUP_ID``). Each reads every
partition, builds the same windows (event time, order-independent sampling) and races to insert the
window's drift_reports row; the winner publishes. One consumer group shared by several instances
would split a window's events between them and is not supported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from monitor import store
from monitor.delivery import Delivery
from monitor.evidently_report import WorkspaceSink
from monitor.judge import judge, report_path, to_report, warm_up
from monitor.policy import DriftPolicy, command_id_for
from monitor.reference import ChampionReference, ReferenceSource
from monitor.settings import MonitorSettings
from monitor.windows import (
    ClosedWindow,
    PairedWatermark,
    Source,
    Watermark,
    WindowEvent,
    make_windower,
)
from personas.errors import PersonaError, Stopping
from personas.failpoints import failpoint
from personas.schemas import DriftReport, PersonaLabel, RetrainCommand, utc_now
from personas.settings import Settings

__all__ = ["MonitorStats", "WindowProcessor", "run"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass
class MonitorStats:
    labels: int = 0
    responses: int = 0
    invalid: int = 0
    windows: int = 0
    published: int = 0
    adopted: int = 0
    retrains: int = 0
    late: int = 0
    future: int = 0  # dated beyond the wall clock + future_margin_s: ignored


class WindowProcessor:
    """Judges windows one at a time and makes the outcome durable: row, report, command."""

    def __init__(
        self,
        settings: Settings,
        ms: MonitorSettings,
        reference: ReferenceSource,
        producer: Any,
        stop: threading.Event,
        stats: MonitorStats,
    ) -> None:
        self.settings = settings
        self.ms = ms
        self.reference = reference
        self.producer = producer
        self.stop = stop
        self.stats = stats
        self.policy = DriftPolicy(ms.consecutive_windows, ms.cooldown_delta)
        self._conn: Any = None
        self.delivery = Delivery(settings, producer, stop)
        self.workspace = (
            None
            if ms.evidently_workspace is None
            else WorkspaceSink(ms.evidently_workspace, f"persona-monitor {settings.model_name}")
        )
        self._retryable: tuple[type[BaseException], ...] = (
            PersonaError,
            OSError,
            *_driver_errors(),
        )

    def connection(self) -> Any:
        from personas.db import connect

        if self._conn is None or self._conn.closed:
            self._conn = connect(self.settings)
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self.delivery.close()

    def restore(self, prefix: str) -> int:
        """Finish deliveries a crash interrupted, then rebuild the policy from the last stored
        windows of this window size."""
        self._retrying("the outbox", self._finish_deliveries)
        conn = self.connection()
        rows = store.history(conn, self.ms.history_windows, prefix)
        conn.rollback()
        for row in rows:
            self.policy.replay(
                row.window_id,
                row.start,
                row.end,
                row.status,  # type: ignore[arg-type]
                row.model_version,
                row.retrain_command_id is not None,
            )
        return len(rows)

    def process(self, window: ClosedWindow) -> DriftReport | None:
        """Retry until done or stopping: a window is never skipped because a service blinked."""
        return self._retrying(f"window {window.window_id}", lambda: self._process_once(window))

    def _retrying(self, what: str, step: Callable[[], _T]) -> _T:
        delay = 1.0
        while True:
            try:
                return step()
            except Stopping:
                raise
            except self._retryable as exc:
                if self.stop.is_set():
                    raise Stopping(what) from None
                log.warning("%s: %s; retrying in %.0f s", what, exc, delay)
                self.close()
                self._conn = None
                if self.stop.wait(delay):
                    raise Stopping(what) from None
                delay = min(delay * 2, 30.0)

    def _finish_deliveries(self) -> None:
        conn = self.connection()
        pending = store.unpublished(conn)
        conn.rollback()
        for window_id in pending:
            report_sent, command_sent = self.delivery.deliver(conn, window_id, recovering=True)
            log.info(
                "window %s: delivery finished after a restart (report %s, command %s)",
                window_id,
                "sent" if report_sent else "was already there",
                "sent" if command_sent else "none or already there",
            )

    def _adopt(self, stored: store.StoredWindow) -> None:
        conn = self.connection()
        if stored.published_at is None:  # a crash between the row and its messages
            report_sent, command_sent = self.delivery.deliver(
                conn, stored.window_id, recovering=True
            )
            if report_sent:
                self.stats.published += 1
            if command_sent:
                self.stats.retrains += 1
        else:
            report_sent = False
        if not report_sent:
            self.stats.adopted += 1
        log.info(
            "window %s was decided by %s: %s", stored.window_id, stored.decided_by, stored.status
        )
        self.policy.replay(
            stored.window_id,
            stored.start,
            stored.end,
            stored.status,  # type: ignore[arg-type]
            stored.model_version,
            stored.retrain_command_id is not None,
        )

    def _process_once(self, window: ClosedWindow) -> DriftReport | None:
        conn = self.connection()
        known = store.fetch(conn, window.window_id)
        conn.rollback()
        if known is not None:  # re-read after a restart, or another instance was faster
            self._adopt(known)
            return None
        ref = self.reference.current()
        verdict = judge(window, ref, self.ms)
        decision = self.policy.decide(
            window.window_id,
            window.start,
            window.end,
            verdict.outcome,
            model_version=verdict.model_version,
            failed_tests=verdict.failed_tests,
        )
        report_uri = None
        if verdict.evidently is not None and self.ms.reports != "never":
            path = report_path(self.ms.reports_dir, window.window_id, verdict.model_version)
            report_uri = str(verdict.evidently.save_html(path).resolve())
            if self.workspace is not None:
                try:
                    self.workspace.add(verdict.evidently)
                except Exception:
                    log.exception("could not add window %s to the workspace", window.window_id)
        report = to_report(window, verdict, decision, report_uri=report_uri)
        command = None
        if decision.retrain is not None:
            command = RetrainCommand(
                command_id=command_id_for(self.settings.model_name, window.window_id),
                range_start=decision.retrain.range_start,
                range_end=decision.retrain.range_end,
                reason=decision.retrain.reason,
                requested_by=f"{self.ms.requested_by}:{self.ms.instance_id}",
                requested_at=utc_now(),
                window_ids=decision.retrain.window_ids,
            )
        marks = self.delivery.marks()
        with conn.transaction():
            stored = store.claim(
                conn, report, command=command, marks=marks, decided_by=self.ms.instance_id
            )
        conn.commit()
        if stored is not None:
            self._adopt(stored)
            return None
        failpoint("monitor.after_claim")
        self.delivery.deliver(conn, window.window_id, recovering=False)
        self.policy.commit(decision)
        self.stats.published += 1
        if command is not None:
            self.stats.retrains += 1
        failed = ", ".join(verdict.failed_tests) or "-"
        log.info(
            "window %s: %d events, %s (failed: %s; verdict %.0f ms, report %.0f ms)%s",
            window.window_id,
            window.event_count,
            report.status,
            failed,
            verdict.seconds * 1000,
            verdict.report_seconds * 1000,
            f"; retrain {command.command_id}" if command else "",
        )
        return report


def _driver_errors() -> tuple[type[BaseException], ...]:
    import psycopg
    from confluent_kafka import KafkaException

    return (psycopg.Error, KafkaException)


def _label_event(value: bytes) -> WindowEvent:
    label = PersonaLabel.model_validate_json(value)
    return WindowEvent(label.event_id, label.submitted_at, label.features(), label.model_version)


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
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

    from personas.db import apply_migrations
    from personas.doctor import require_kafka
    from personas.kafka import consumer_config, producer_config

    require_kafka(settings, "monitor")
    apply_migrations(settings)
    stats = MonitorStats() if stats is None else stats
    windower = make_windower(ms.window, origin=ms.window_origin, max_events=ms.max_window_events)
    label_clock = Watermark(ms.lateness)
    response_clock = Watermark(ms.lateness) if ms.consume_responses else None
    watermark = PairedWatermark(label_clock, response_clock)
    producer = Producer(producer_config(settings, **{"linger.ms": 5}))
    processor = WindowProcessor(
        settings, ms, reference or ChampionReference(settings), producer, stop, stats
    )
    restored = processor.restore(f"{windower.label}-")
    labels_topic = settings.topics.labels
    topics = [labels_topic] + ([settings.topics.responses] if ms.consume_responses else [])

    def on_assign(consumer: Any, partitions: list[Any]) -> None:
        label_clock.assign([(p.topic, p.partition) for p in partitions if p.topic == labels_topic])
        if response_clock is not None:
            response_clock.assign(
                [(p.topic, p.partition) for p in partitions if p.topic != labels_topic]
            )

    # Static membership (KIP-345): a restarted monitor (after a crash, a deploy) rejoins as the
    # same member and gets its partitions back at once; a dynamic member would wait for the dead
    # one's session to time out (45 s) before any window closes again.
    consumer = Consumer(
        consumer_config(
            settings,
            ms.group_id,
            **{"enable.partition.eof": True, "group.instance.id": ms.instance_id},
        )
    )
    consumer.subscribe(topics, on_assign=on_assign)
    consumed: dict[Source, int] = {}

    def unread(source: Source) -> bool:
        """Whether a partition at EOF has received messages since (asked of the broker, only when
        the watermark is about to move past it)."""
        part = TopicPartition(source[0], source[1])
        try:
            _, high = consumer.get_watermark_offsets(part, timeout=5, cached=False)
            (at,) = consumer.position([part])
        except KafkaException:
            return True  # cannot tell: hold the watermark rather than close windows early
        position = consumed.get(source, at.offset)
        return position >= 0 and int(high) > position

    label_clock.has_unread = unread
    if response_clock is not None:
        response_clock.has_unread = unread
    log.info(
        "monitor %s: window %s, lateness %s, topics %s, group %s (%d stored windows replayed)",
        ms.instance_id,
        ms.window,
        ms.allowed_lateness,
        topics,
        ms.group_id,
        restored,
    )
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="monitor-judge")
    executor.submit(warm_up, ms)
    inflight: deque[tuple[Future[DriftReport | None], ClosedWindow]] = deque()
    last_commit = time.monotonic()
    failure: BaseException | None = None

    def committable() -> list[Any]:
        held = windower.held_offsets()
        for _, window in inflight:
            for source, offset in window.offsets.items():
                held[source] = min(offset, held.get(source, offset))
        return [
            TopicPartition(
                topic, partition, min(next_offset, held.get((topic, partition), next_offset))
            )
            for (topic, partition), next_offset in consumed.items()
        ]

    def commit() -> None:
        offsets = committable()
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:
                log.warning("offset commit failed: %s", exc)

    future_margin = timedelta(seconds=ms.future_margin_s)

    def from_the_future(at: datetime, source: Source, offset: int) -> bool:
        """An event dated beyond the wall clock + margin: counted, said, never observed."""
        if at <= datetime.now(UTC) + future_margin:
            return False
        stats.future += 1
        if stats.future == 1 or stats.future % 1000 == 0:
            log.warning(
                "ignoring an event dated %s at %s@%d: beyond the clock + %s "
                "(PERSONA_MONITOR_FUTURE_MARGIN_S); %d so far",
                at.isoformat(),
                source,
                offset,
                future_margin,
                stats.future,
            )
        return True

    def handle(msg: Any) -> None:
        source: Source = (str(msg.topic()), int(msg.partition()))
        clock = label_clock if source[0] == labels_topic else response_clock
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                if clock is not None:
                    clock.eof(source)
            else:
                log.warning("consumer error: %s", err)
            return
        offset = int(msg.offset())
        consumed[source] = offset + 1
        if source[0] != labels_topic:
            stats.responses += 1
            _, ts = msg.timestamp()
            if ts >= 0 and clock is not None:
                submitted_at = datetime.fromtimestamp(ts / 1000, UTC)
                if from_the_future(submitted_at, source, offset):
                    return
                clock.observe(source, submitted_at)
                windower.add_response(submitted_at, source, offset)
            return
        try:
            event = _label_event(msg.value() or b"")
        except ValueError as exc:
            stats.invalid += 1
            log.warning("skipping invalid label at %s@%d: %s", source, offset, exc)
            return
        if from_the_future(event.submitted_at, source, offset):
            return
        stats.labels += 1
        label_clock.observe(source, event.submitted_at)
        if not windower.add_label(event, source, offset):
            stats.late += 1
            if stats.late == 1 or stats.late % 1000 == 0:
                log.warning(
                    "an event dated %s at %s@%d arrived after its window was reported: not judged,"
                    " counted in the next report (info:late_events); %d so far",
                    event.submitted_at.isoformat(),
                    source,
                    offset,
                    stats.late,
                )

    try:
        while not stop.is_set():
            for msg in consumer.consume(num_messages=1000, timeout=0.2):
                handle(msg)
            for window in windower.advance(watermark.value()):
                stats.windows += 1
                inflight.append((executor.submit(processor.process, window), window))
            while inflight and inflight[0][0].done():
                future, _ = inflight.popleft()
                error = future.exception()
                if error is not None:
                    raise error
            if time.monotonic() - last_commit >= ms.commit_interval_s:
                commit()
                last_commit = time.monotonic()
    except Stopping:
        pass
    except BaseException as exc:
        failure = exc
        stop.set()
        raise
    finally:
        executor.shutdown(wait=True)
        while inflight and inflight[0][0].done() and inflight[0][0].exception() is None:
            inflight.popleft()
        if failure is None:
            commit()
        consumer.close()
        producer.flush(10)
        processor.close()
        log.info("monitor %s stopped: %s", ms.instance_id, stats)
    return stats
