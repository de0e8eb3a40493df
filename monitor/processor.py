"""The judge thread's work: one closed window at a time → verdict, outbox row, Kafka messages.

:class:`WindowProcessor` gets the windows in order from the consumer loop (monitor/service.py)
and makes each outcome durable exactly once: a window already stored (a restart, or another
instance was faster) is adopted; otherwise it is judged, its drift_reports row is claimed and
committed with what is to be sent, then delivered (monitor/delivery.py, monitor/store.py). A
service that blinks is retried with backoff, never skipped; only ``stop`` ends the retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from monitor import store
from monitor.delivery import Delivery
from monitor.judge import Verdict, judge, report_path, to_report
from monitor.policy import Decision, DriftPolicy, command_id_for
from monitor.reference import ReferenceSource
from monitor.settings import MonitorSettings
from monitor.windows import ClosedWindow
from monitor.workspace import WindowHistory, project_name
from personas.errors import PersonaError, Stopping
from personas.failpoints import failpoint
from personas.schemas import DriftReport, RetrainCommand, utc_now
from personas.settings import Settings

if TYPE_CHECKING:
    from monitor.counters import MonitorStats
    from monitor.metrics import MonitorMetrics

__all__ = ["WindowProcessor"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


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
        metrics: MonitorMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.ms = ms
        self.reference = reference
        self.producer = producer
        self.stop = stop
        self.stats = stats
        self.metrics = metrics
        self.policy = DriftPolicy(ms.consecutive_windows, ms.cooldown_delta)
        self._conn: Any = None
        self.delivery = Delivery(settings, producer, stop)
        self.history = (
            None
            if ms.evidently_workspace is None
            else WindowHistory(ms.evidently_workspace, project_name(settings.model_name))
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
        if self.metrics is not None:
            self.metrics.window_decided(stored.status, stored.end)
        self.policy.replay(
            stored.window_id,
            stored.start,
            stored.end,
            stored.status,  # type: ignore[arg-type]
            stored.model_version,
            stored.retrain_command_id is not None,
        )

    def _process_once(self, window: ClosedWindow) -> DriftReport | None:
        """One attempt: adopt a stored decision, or judge, claim the row, deliver (the order that
        makes delivery exactly-once: monitor/delivery.py)."""
        conn = self.connection()
        known = store.fetch(conn, window.window_id)
        conn.rollback()
        if known is not None:  # re-read after a restart, or another instance was faster
            self._adopt(known)
            return None
        judged = self._judge(window)
        stored = self._claim(conn, judged)
        if stored is not None:
            self._adopt(stored)
            return None
        failpoint("monitor.after_claim")
        self._deliver(conn, judged)
        return judged.report

    def _judge(self, window: ClosedWindow) -> _Judged:
        """Verdict, policy decision (the policy is not changed yet), HTML report, messages."""
        verdict = judge(window, self.reference.current(), self.ms)
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
        return _Judged(window, verdict, decision, report, command)

    def _claim(self, conn: Any, judged: _Judged) -> store.StoredWindow | None:
        """Commit the window's outbox row; None if ours, else the row another instance stored."""
        marks = self.delivery.marks()
        with conn.transaction():
            stored = store.claim(
                conn,
                judged.report,
                command=judged.command,
                marks=marks,
                decided_by=self.ms.instance_id,
            )
        conn.commit()
        return stored

    def _deliver(self, conn: Any, judged: _Judged) -> None:
        """Send the claimed row's messages, then let the policy see the decision."""
        window, verdict, command = judged.window, judged.verdict, judged.command
        self.delivery.deliver(conn, window.window_id, recovering=False)
        self.policy.commit(judged.decision)
        self.stats.published += 1
        if command is not None:
            self.stats.retrains += 1
        if self.metrics is not None:
            self.metrics.window_decided(judged.report.status, window.end, verdict.seconds)
        if self.history is not None:  # a view of the stored decision; never raises
            full = None if verdict.evidently is None else verdict.evidently.snapshot
            self.history.record(judged.report, full)
        failed = ", ".join(verdict.failed_tests) or "-"
        log.info(
            "window %s: %d events, %s (failed: %s; verdict %.0f ms, report %.0f ms)%s",
            window.window_id,
            window.event_count,
            judged.report.status,
            failed,
            verdict.seconds * 1000,
            verdict.report_seconds * 1000,
            f"; retrain {command.command_id}" if command else "",
        )


@dataclass(frozen=True)
class _Judged:
    """A window's outcome before it is stored: what the row and the messages will hold."""

    window: ClosedWindow
    verdict: Verdict
    decision: Decision
    report: DriftReport
    command: RetrainCommand | None


def _driver_errors() -> tuple[type[BaseException], ...]:
    import psycopg
    from confluent_kafka import KafkaException

    return (psycopg.Error, KafkaException)
