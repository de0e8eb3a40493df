"""Watch a topic: a small, bounded consumer that prints messages readably or as JSON lines.

It reads without a consumer group (partitions assigned by hand), so tailing never commits
offsets, never joins or rebalances a service's group, and can start anywhere: at the end (new
messages only), at the beginning, or at the first message at or after a time (``offsets_for_times``
on the Kafka timestamp, which is the event time on survey-responses and persona-labels).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from personas.errors import ConfigError, ServiceUnavailable
from personas.kafka import check_kafka, consumer_config
from personas.settings import Settings

__all__ = ["TAIL_TOPICS", "TailMessage", "consume", "format_message", "resolve_topic"]

#: Short names accepted by ``persona tail`` → the TopicNames field they stand for.
TAIL_TOPICS: dict[str, str] = {
    "responses": "responses",
    "labels": "labels",
    "dlq": "dlq",
    "alerts": "alerts",
    "retrain": "retrain",
    "model-updates": "model_updates",
}


@dataclass(frozen=True)
class TailMessage:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: str | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] | None = None
    raw_key: bytes | None = None

    def json_value(self) -> Any:
        """The value parsed as JSON, or the text itself when it is not JSON. A dead letter (the
        original bytes, why in its headers) is shown as the documented DeadLetter document."""
        from personas.dead_letters import decode, is_dead_letter

        if is_dead_letter(self.headers):
            return decode(self.raw_key, self.value, self.headers).model_dump(mode="json")
        if self.value is None:
            return None
        text = self.value.decode("utf-8", errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return text

    def to_json(self) -> str:
        return json.dumps(
            {
                "topic": self.topic,
                "partition": self.partition,
                "offset": self.offset,
                "timestamp_ms": self.timestamp_ms,
                "key": self.key,
                "value": self.json_value(),
            },
            ensure_ascii=False,
        )


def resolve_topic(settings: Settings, name: str) -> str:
    field = TAIL_TOPICS.get(name)
    if field is None:
        raise ConfigError(f"unknown topic {name!r}; one of {', '.join(TAIL_TOPICS)}")
    return str(getattr(settings.topics, field))


def consume(
    settings: Settings,
    topic: str,
    *,
    since_ms: int | None = None,
    from_beginning: bool = False,
    max_messages: int | None = None,
    timeout_s: float | None = None,
    stop: Callable[[], bool] | None = None,
) -> Iterator[TailMessage]:
    """Yield messages of every partition of ``topic`` until a bound is reached.

    Starts at ``since_ms`` (first message with a timestamp at or after it), at the beginning, or
    at the end (default). Stops after ``max_messages``, after ``timeout_s`` seconds without a new
    message, or when ``stop()`` returns True; with none of them it runs until interrupted.
    """
    from confluent_kafka import (
        OFFSET_BEGINNING,
        OFFSET_END,
        Consumer,
        KafkaException,
        TopicPartition,
    )

    check_kafka(settings)  # a dead broker is one line, before any consumer starts retrying
    consumer = Consumer(
        consumer_config(settings, None, **{"group.id": "persona-tail", "enable.auto.commit": False})
    )
    try:
        try:
            meta = consumer.list_topics(topic, timeout=10)
        except KafkaException as exc:
            raise ServiceUnavailable("Kafka", settings.kafka_bootstrap, str(exc)) from None
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise ConfigError(f"topic {topic} does not exist on {settings.kafka_bootstrap}")
        partitions = sorted(info.partitions)
        if since_ms is not None:
            wanted = [TopicPartition(topic, p, since_ms) for p in partitions]
            assigned = consumer.offsets_for_times(wanted, timeout=10)
            # No message at or after the time: offset -1 means "the end".
            start = [
                TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
                for tp in assigned
            ]
        else:
            where = OFFSET_BEGINNING if from_beginning else OFFSET_END
            start = [TopicPartition(topic, p, where) for p in partitions]
        consumer.assign(start)
        seen = 0
        last = time.monotonic()
        while max_messages is None or seen < max_messages:
            if stop is not None and stop():
                return
            msg = consumer.poll(0.2)
            if msg is None:
                if timeout_s is not None and time.monotonic() - last >= timeout_s:
                    return
                continue
            if msg.error():
                raise ServiceUnavailable("Kafka", settings.kafka_bootstrap, str(msg.error()))
            last = time.monotonic()
            seen += 1
            kind, stamp = msg.timestamp()
            key = msg.key()
            yield TailMessage(
                topic=msg.topic() or topic,
                partition=msg.partition() or 0,
                offset=msg.offset() or 0,
                timestamp_ms=stamp if kind else None,
                key=key.decode("utf-8", errors="replace") if key is not None else None,
                value=msg.value(),
                headers=_header_list(msg.headers()),
                raw_key=key,
            )
    finally:
        consumer.close()


def _header_list(
    headers: list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None,
) -> list[tuple[str, bytes | None]] | None:
    """A consumed message's headers as (name, bytes) pairs (the client's type also allows str)."""
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, dict) else headers
    return [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def format_message(kind: str, msg: TailMessage) -> str:
    """One readable line for a message of topic kind ``kind`` (a TAIL_TOPICS name)."""
    where = f"{msg.partition}:{msg.offset}"
    value = msg.json_value()
    if not isinstance(value, dict):
        return f"{_iso(msg.timestamp_ms)} [{where}] key={msg.key} (not a JSON object) {value!r}"
    try:
        text = _FORMATTERS[kind](value)
    except (KeyError, TypeError, ValueError) as exc:
        text = f"(unexpected shape: {exc}) {json.dumps(value)[:300]}"
    return f"{_iso(msg.timestamp_ms)} [{where}] {text}"


def _features(v: dict[str, Any]) -> str:
    xs = [v.get(f"x{i}") for i in range(1, 11)]
    return "[" + ", ".join(f"{x:.2f}" if isinstance(x, int | float) else repr(x) for x in xs) + "]"


def _response(v: dict[str, Any]) -> str:
    truth = v.get("true_persona_id")
    tail = f" true={truth}" if truth is not None else ""
    return f"{v['respondent_id']} event={v['event_id']} x={_features(v)}{tail}"


def _label(v: dict[str, Any]) -> str:
    flag = " OUTLIER" if v.get("is_outlier") else ""
    return (
        f"{v['respondent_id']} → {v['persona_name']} ({v['persona_id']}) "
        f"d={v['distance']:.2f} margin={v['margin']:.2f} model v{v['model_version']}{flag}"
    )


def _dlq(v: dict[str, Any]) -> str:
    return (
        f"{v['error_kind']}: {v['reason']} (from {v['source_topic']}"
        f"[{v['source_partition']}]@{v['source_offset']}, key={v.get('original_key')})"
    )


def _alert(v: dict[str, Any]) -> str:
    if v.get("kind", "drift_report") == "drift_report":
        failed = [t["name"] for t in v.get("tests", []) if t.get("failed")]
        tests = f" failed: {', '.join(failed)}" if failed else ""
        return (
            f"window {v['window_id']} {v['status'].upper()} events={v['event_count']} "
            f"model v{v['model_version']}{tests}"
        )
    return f"{v['kind']}: {v['message']}"


def _retrain(v: dict[str, Any]) -> str:
    return (
        f"retrain {v['command_id']} range {v['range_start']} → {v['range_end']} "
        f"by {v['requested_by']}: {v['reason']}"
    )


def _model_update(v: dict[str, Any]) -> str:
    prev = v.get("previous_version")
    was = f" (was v{prev})" if prev is not None else ""
    return f"{v['model_name']}@{v['alias']} = v{v['version']}{was} run={v.get('run_id')}"


_FORMATTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "responses": _response,
    "labels": _label,
    "dlq": _dlq,
    "alerts": _alert,
    "retrain": _retrain,
    "model-updates": _model_update,
}
