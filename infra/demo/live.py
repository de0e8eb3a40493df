"""What the demo shows while it runs: labels flowing, drift alerts, retrains and hot swaps.

One background thread reads the three user-facing topics as any consumer would (from the start,
outside any consumer group) and prints one readable line per event worth a person's attention.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import TypeAdapter, ValidationError
from rich.console import Console

from personas.kafka import consumer_config
from personas.schemas import Alert, DriftReport, ModelUpdated, PersonaLabel, TrainerAlert
from personas.settings import Settings

__all__ = ["LiveView", "Observed"]

_ALERT = TypeAdapter(Alert)
_STATUS_STYLE = {
    "ok": "green",
    "warning": "yellow",
    "drift": "bold red",
    "insufficient_data": "dim",
}


@dataclass
class Observed:
    """Everything the live view saw; the e2e test asserts the story on it."""

    labels: int = 0
    labels_by_version: Counter[int] = field(default_factory=Counter)
    event_ids: set[str] = field(default_factory=set)
    first_event_time_by_version: dict[int, datetime] = field(default_factory=dict)
    reports: list[DriftReport] = field(default_factory=list)
    trainer_alerts: list[TrainerAlert] = field(default_factory=list)
    updates: list[ModelUpdated] = field(default_factory=list)
    latest_event_time: datetime | None = None


class LiveView:
    def __init__(self, settings: Settings, console: Console, progress_every: float = 5.0) -> None:
        self.settings = settings
        self.console = console
        self.progress_every = progress_every
        self.seen = Observed()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-live-view", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(15)

    def snapshot(self) -> Observed:
        with self._lock:
            return self.seen

    def _run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition

        t = self.settings.topics
        consumer = Consumer(
            consumer_config(
                self.settings, group_id=None, **{"group.id": f"demo-view-{time.time_ns()}"}
            )
        )
        assignments = []
        metadata = consumer.list_topics(timeout=10)
        for topic in (t.labels, t.alerts, t.model_updates):
            for partition in metadata.topics[topic].partitions:
                assignments.append(TopicPartition(topic, partition, 0))
        consumer.assign(assignments)
        last_progress = time.monotonic()
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(1000, timeout=0.5):
                    name, value = msg.topic(), msg.value()
                    if msg.error() is None and name is not None and value is not None:
                        self._handle(name, value)
                if time.monotonic() - last_progress > self.progress_every:
                    last_progress = time.monotonic()
                    self._progress()
        finally:
            consumer.close()

    def _handle(self, topic: str, value: bytes) -> None:
        t = self.settings.topics
        try:
            if topic == t.labels:
                label = PersonaLabel.model_validate_json(value)
                with self._lock:
                    self.seen.labels += 1
                    self.seen.labels_by_version[label.model_version] += 1
                    self.seen.event_ids.add(str(label.event_id))
                    first = self.seen.first_event_time_by_version
                    if label.model_version not in first:
                        first[label.model_version] = label.submitted_at
                        if len(first) > 1:
                            self.console.print(
                                f"[bold magenta]labels now carry model v{label.model_version}[/] "
                                f"(first at event time {label.submitted_at:%Y-%m-%d %H:%M})"
                            )
                    if (
                        self.seen.latest_event_time is None
                        or label.submitted_at > self.seen.latest_event_time
                    ):
                        self.seen.latest_event_time = label.submitted_at
            elif topic == t.alerts:
                alert = _ALERT.validate_json(value)
                with self._lock:
                    if isinstance(alert, DriftReport):
                        self.seen.reports.append(alert)
                    else:
                        self.seen.trainer_alerts.append(alert)
                self._print_alert(alert)
            elif topic == t.model_updates:
                update = ModelUpdated.model_validate_json(value)
                with self._lock:
                    self.seen.updates.append(update)
                if update.previous_version is None:
                    self.console.print(
                        f"[cyan]champion[/]: {update.model_name} @{update.alias} is v{update.version}"
                    )
                else:
                    self.console.print(
                        f"[bold cyan]hot swap[/]: {update.model_name} @{update.alias} → "
                        f"v{update.version} (was v{update.previous_version}, run {update.run_id})"
                    )
        except ValidationError as exc:
            self.console.print(f"[red]unreadable message on {topic}: {exc.errors()[0]['msg']}[/]")

    def _print_alert(self, alert: DriftReport | TrainerAlert) -> None:
        if isinstance(alert, TrainerAlert):
            self.console.print(f"[bold yellow]trainer {alert.kind}[/]: {alert.message}")
            return
        failed = [t for t in alert.tests if t.failed and not t.name.startswith("evidently:")]
        detail = ", ".join(
            f"{t.name}" + (f" p={t.p_value:.1e}" if t.p_value is not None else "")
            for t in failed[:4]
        )
        if alert.report_uri:
            detail += f"  (report: {alert.report_uri.rsplit('/', 1)[-1]})"
        style = _STATUS_STYLE.get(alert.status, "white")
        self.console.print(
            f"window {alert.window_start:%Y-%m-%d} → {alert.window_end:%Y-%m-%d}  "
            f"n={alert.event_count:<5} model v{alert.model_version}  "
            f"[{style}]{alert.status.upper():<17}[/]" + (f" failed: {detail}" if detail else "")
        )

    def _progress(self) -> None:
        with self._lock:
            seen = self.seen
            by_version = ", ".join(
                f"v{v}: {n:,}" for v, n in sorted(seen.labels_by_version.items())
            )
            when = f"{seen.latest_event_time:%Y-%m-%d}" if seen.latest_event_time else "-"
        self.console.print(
            f"[dim]labels {seen.labels:,} ({by_version or 'none yet'}), event time {when}[/]"
        )
