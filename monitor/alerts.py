"""`persona alerts`: watch drift-alerts for a person (one coloured line per message) or a tool (JSON).

Reads the alerts topic without a consumer group (every partition assigned, nothing committed), so
watching never disturbs anyone and any number of people can watch. DriftReports and TrainerAlerts
share the topic; both are shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import TypeAdapter, ValidationError

from personas.schemas import Alert, DriftReport, TrainerAlert
from personas.settings import Settings

__all__ = ["STATUS_COLOURS", "format_alert", "watch"]

STATUS_COLOURS = {
    "ok": "green",
    "warning": "yellow",
    "drift": "red",
    "insufficient_data": "bright_black",
}

_ADAPTER: TypeAdapter[Any] = TypeAdapter(Alert)


def _short(name: str, p: float | None) -> str:
    return name if p is None else f"{name} p={p:.1e}"


def _moved_personas(alert: DriftReport) -> str:
    """ "moved: Sustainable Steve shift x1 +0.53σ x2 +0.62σ; …" from the per-persona entries."""
    parts: dict[str, list[str]] = {}
    features: dict[str, list[str]] = {}
    for test in alert.tests:
        if not (test.name.startswith("persona:") and test.failed):
            continue
        persona, what = test.name.removeprefix("persona:").rsplit(":", 1)
        if what in ("shift", "spread"):
            parts.setdefault(persona, []).append(what)
        elif test.statistic is not None:
            features.setdefault(persona, []).append(f"{what} {test.statistic:+.2f}σ")
    return "; ".join(
        " ".join([persona, *kinds, *features.get(persona, [])]) for persona, kinds in parts.items()
    )


def format_alert(alert: DriftReport | TrainerAlert) -> tuple[str, str]:
    """(one readable line, colour name)."""
    if isinstance(alert, TrainerAlert):
        text = f"trainer   {alert.kind:<17} {alert.message}"
        return text, "magenta"
    start = alert.window_start.strftime("%Y-%m-%d %H:%M")
    end = alert.window_end.strftime("%Y-%m-%d %H:%M")
    failed = [t for t in alert.tests if t.failed and ":" not in t.name]
    parts = [
        f"{start} → {end}",
        f"{alert.status:<17}",
        f"n={alert.event_count:<6}",
        f"model v{alert.model_version}",
    ]
    if alert.mean_distance is not None:
        parts.append(f"mean distance {alert.mean_distance:.2f}")
    if failed:
        parts.append("failed: " + ", ".join(_short(t.name, t.p_value) for t in failed))
    moved = _moved_personas(alert)
    if moved:
        parts.append(f"moved: {moved}")
    shown = (
        "info:policy",
        "info:too_few_events",
        "info:late_events",
        "info:verdict_error",
        "info:evidently_report",
    )
    notes = [t.detail for t in alert.tests if t.name in shown]
    parts.extend(notes)
    if alert.sampled:
        parts.append("(sampled)")
    if alert.report_uri:
        parts.append(f"report {alert.report_uri}")
    return "  ".join(parts), STATUS_COLOURS.get(alert.status, "white")


def watch(
    settings: Settings,
    *,
    from_beginning: bool,
    max_messages: int | None,
    timeout: float | None,
    emit: Callable[[bytes, DriftReport | TrainerAlert | None], None],
) -> int:
    """Call ``emit(raw, parsed)`` per message until ``max_messages`` or ``timeout`` seconds."""
    count = 0
    for raw, alert in _messages(settings, from_beginning=from_beginning, timeout=timeout):
        emit(raw, alert)
        count += 1
        if max_messages is not None and count >= max_messages:
            break
    return count


def _messages(
    settings: Settings, *, from_beginning: bool, timeout: float | None
) -> Iterator[tuple[bytes, DriftReport | TrainerAlert | None]]:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from personas.kafka import check_kafka, consumer_config

    check_kafka(settings)
    consumer = Consumer(
        consumer_config(settings, "persona-alerts-viewer", **{"enable.auto.commit": False})
    )
    topic = settings.topics.alerts
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            from personas.errors import ConfigError

            raise ConfigError(f"topic {topic!r} does not exist (is the stack set up?)")
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topic, p, start) for p in metadata.partitions])
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            msg = consumer.poll(wait)
            if msg is None or msg.error() is not None:
                continue
            raw = msg.value() or b""
            try:
                alert = _ADAPTER.validate_json(raw)
            except ValidationError:
                alert = None
            yield raw, alert
    finally:
        consumer.close()
