"""Publish survey events to Kafka: validated, batched, paced if asked, every delivery counted.

Key = ``respondent_id``; Kafka timestamp = ``submitted_at`` (ms, CreateTime); value = the
``SurveyResponse`` JSON (``producer.payloads``). Nothing invalid reaches the topic unless the
caller asks for raw rows (``publish_raw_frame``, for testing the DLQ). JSON for the next chunk is
built on a second thread while the current one is handed to librdkafka (pyarrow releases the GIL).

Every delivery is counted without a Python call per message: the client reports only failures
(``delivery.report.only.error``, which confluent-kafka implements in C, freeing each message's
state either way), and librdkafka gives every message handed to it exactly one outcome, so
``sent = handed - failed - still queued after the flush``. A Python delivery callback per message
cost more than the produce call itself (profile in docs/benchmarks/producer.md).

The broker refuses timestamps more than ``message.timestamp.after.max.ms`` (1 h by default since
Kafka 4.0) in the future, or older than ``message.timestamp.before.max.ms``. Rows outside those
limits are found *before* anything is sent, from the topic's own configuration: the call fails
with an explanation, or skips and reports them (``on_future="skip"``); they are never lost silently.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from personas.errors import ConfigError, InputFileError, InvalidEvent
from personas.kafka import (
    KEEP_FOREVER,
    TopicSpec,
    admin_config,
    ensure_topics,
    produce_waiting,
    producer_config,
)
from personas.schemas import parse_survey_response
from personas.settings import Settings
from producer.files import read_events
from producer.payloads import build_payloads
from producer.settings import ProducerSettings
from producer.validation import Events, RowError, validate_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "InvalidRowsError",
    "PublishSummary",
    "TimestampLimitError",
    "TopicTimestampPolicy",
    "check_sample",
    "publish_events",
    "publish_file",
    "publish_raw_frame",
    "publish_rows",
    "topic_timestamp_policy",
]

OnInvalid = Literal["skip", "fail"]
#: Delivery errors the broker gives for records it refuses (measured: one record more than
#: 1 h in the future fails as INVALID_RECORD and its batch-mates as _INVALID_DIFFERENT_RECORD).
_REJECTED_RECORDS = {"INVALID_TIMESTAMP", "INVALID_RECORD", "_INVALID_DIFFERENT_RECORD"}
Progress = Callable[[int], None]


class InvalidRowsError(InputFileError):
    """Rows failed validation and ``on_invalid="fail"``: nothing was sent."""

    def __init__(self, source: str, errors: list[RowError]) -> None:
        self.errors = errors
        super().__init__(
            f"{source}: {len(errors)} invalid row(s), nothing sent (first: {errors[0]}); "
            "use --on-invalid skip to send the valid rows"
        )


class TimestampLimitError(ConfigError):
    """Rows are outside the timestamps the topic accepts; nothing was sent."""


@dataclass(frozen=True)
class TopicTimestampPolicy:
    """What the broker does with record timestamps on one topic (from its configuration)."""

    after_max_ms: int
    before_max_ms: int
    timestamp_type: str


@dataclass
class PublishSummary:
    """What happened to every input row. ``ok`` is False when any delivery failed."""

    topic: str
    rows: int = 0
    sent: int = 0
    failed: int = 0
    invalid: int = 0
    skipped_time: int = 0
    elapsed_s: float = 0.0
    errors: list[RowError] = field(default_factory=list)
    delivery_errors: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        text = (
            f"{self.sent} sent to {self.topic}, {self.failed} failed, {self.invalid} invalid, "
            f"{self.skipped_time} outside the topic's timestamp limits, of {self.rows} rows "
            f"in {self.elapsed_s:.1f} s ({self.rate:,.0f} events/s)"
        )
        return text


class _Deliveries:
    """The one delivery callback: counts failures by error name.

    With ``delivery.report.only.error`` it is called for failed messages only; successes are
    counted by :func:`_count_sent`. A success report (a client override turning the option off)
    is ignored rather than counted twice.
    """

    def __init__(self, summary: PublishSummary) -> None:
        self.summary = summary

    def __call__(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.summary.failed += 1
            self.summary.delivery_errors[err.name()] += 1


def _failure_reports(summary: PublishSummary) -> dict[str, Any]:
    """Client settings of a publisher: failures reported to ``summary`` (successes are counted
    by :func:`_count_sent`)."""
    return {"on_delivery": _Deliveries(summary), "delivery.report.only.error": True}


def _count_sent(summary: PublishSummary, handed: int, failed_before: int, remaining: int) -> None:
    """Successes = messages handed to the client - those it reported failed - those it still
    holds after the flush (librdkafka gives each handed message exactly one outcome)."""
    summary.sent += handed - (summary.failed - failed_before) - remaining


def _ready(settings: Settings, topic: str) -> None:
    """Before the first event: the cluster accepts our user for what a publisher does (the
    doctor's line otherwise), and the topic exists (created if missing and we may)."""
    from personas.doctor import require_kafka

    if topic == settings.topics.responses:
        require_kafka(settings, "producer")
    ensure_topics(settings, [TopicSpec(topic, settings.kafka_partitions, dict(KEEP_FOREVER))])


def topic_timestamp_policy(
    settings: Settings, topic: str, timeout: float = 10.0
) -> TopicTimestampPolicy:
    """Read ``message.timestamp.*`` of a topic (broker defaults apply when the topic has none)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]

    admin = AdminClient(admin_config(settings, log_level=4))
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(
            timeout=timeout
        )
    except KafkaException as exc:
        raise ConfigError(f"cannot read the configuration of topic {topic}: {exc}") from None

    def value(name: str, default: str) -> str:
        entry = entries.get(name)
        return str(entry.value) if entry is not None and entry.value is not None else default

    return TopicTimestampPolicy(
        after_max_ms=int(value("message.timestamp.after.max.ms", "3600000")),
        before_max_ms=int(value("message.timestamp.before.max.ms", str(2**63 - 1))),
        timestamp_type=value("message.timestamp.type", "CreateTime"),
    )


def _check_timestamps(
    events: Events,
    policy: TopicTimestampPolicy,
    margin_ms: int,
    topic: str,
    on_future: Literal["fail", "skip"],
    summary: PublishSummary,
) -> Events:
    if len(events) == 0:
        return events
    now_ms = int(time.time() * 1000)
    ms = events.submitted_us // 1000
    outside = ms > now_ms + policy.after_max_ms - margin_ms
    if policy.before_max_ms < 2**62:  # unlimited by default
        outside |= ms < now_ms - policy.before_max_ms + margin_ms
    if not outside.any():
        return events
    count = int(outside.sum())
    first = int(events.line[np.argmax(outside)])
    limit_h = policy.after_max_ms / 3_600_000
    past = (
        f" and at most {policy.before_max_ms} ms in the past (message.timestamp.before.max.ms)"
        if policy.before_max_ms < 2**62
        else ""
    )
    why = (
        f"{count} row(s) (first at line {first}) have submitted_at outside what topic {topic} "
        f"accepts: at most {limit_h:g} h in the future (message.timestamp.after.max.ms="
        f"{policy.after_max_ms}){past}; the broker would reject them, and with them every "
        "other record of their batch"
    )
    if on_future == "fail":
        raise TimestampLimitError(
            why + ". Nothing was sent. Replay a range that has happened (--end), skip them "
            "(--on-future skip), or raise the topic setting, e.g. `kafka-configs.sh --alter "
            f"--entity-type topics --entity-name {topic} --add-config "
            "message.timestamp.after.max.ms=9223372036854775807`"
        )
    summary.notes.append(why + "; skipped")
    summary.skipped_time += count
    for i in np.flatnonzero(outside):
        summary.errors.append(
            RowError(int(events.line[i]), "submitted_at: outside the topic's timestamp limits")
        )
    return events.take(np.flatnonzero(~outside))


def _schema_sample(events: Events, size: int, rng: np.random.Generator) -> list[RowError]:
    """Run the real pydantic schema on a sample of built payloads; any failure is a row error."""
    n = len(events)
    if n == 0 or size == 0:
        return []
    head = np.arange(min(n, size // 2))
    rest = rng.choice(n, size=min(n, size - head.size), replace=False)
    rows = np.unique(np.concatenate([head, rest]))
    sample = events.take(rows)
    errors = []
    for i, payload in enumerate(build_payloads(sample)):
        try:
            parse_survey_response(payload)
        except InvalidEvent as exc:
            errors.append(RowError(int(sample.line[i]), f"schema: {exc}"))
    return errors


def check_sample(
    events: Events,
    summary: PublishSummary,
    producer_settings: ProducerSettings,
    on_invalid: str,
    source: str,
) -> Events:
    """In fast mode, drop (or fail on) rows whose built payload the real schema rejects."""
    if producer_settings.validate_mode != "fast":
        return events
    errors = _schema_sample(events, producer_settings.schema_sample, np.random.default_rng(0))
    if not errors:
        return events
    if on_invalid == "fail":
        raise InvalidRowsError(source, errors)
    summary.errors.extend(errors)
    summary.invalid += len(errors)
    bad = np.isin(events.line, [e.line for e in errors])
    return events.take(np.flatnonzero(~bad))


def _make_progress(total: int, enabled: bool) -> tuple[Progress, Callable[[], None]]:
    if not enabled:
        return (lambda done: None), (lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("publishing", total=total)
    bar.start()
    return (lambda done: bar.update(task, completed=done)), bar.stop


def progress_enabled(mode: str) -> bool:
    import sys

    return mode == "always" or (mode == "auto" and sys.stderr.isatty())


def publish_events(
    settings: Settings,
    events: Events,
    *,
    topic: str | None = None,
    producer_settings: ProducerSettings | None = None,
    rate: float | None = None,
    speed: float | None = None,
    on_future: Literal["fail", "skip"] = "fail",
    summary: PublishSummary | None = None,
    progress: bool = False,
    on_send: Callable[[int, float], None] | None = None,
    client_overrides: dict[str, Any] | None = None,
) -> PublishSummary:
    """Send valid events in the given order.

    ``speed`` paces the sending by event time: event ``i`` goes ``(t_i - t_0) / speed`` seconds
    after the start (events must be in time order; 3600 = an hour of events a second; None or 0
    = as fast as possible). ``rate`` (events/s) caps the pace too. ``on_send(i, wall_clock)`` is
    called as event ``i`` is handed to the client (tests measure pacing with it). Returns the
    summary; ``failed`` counts deliveries the broker refused.
    """
    from confluent_kafka import Producer

    ps = producer_settings or ProducerSettings()
    topic = topic or settings.topics.responses
    summary = summary or PublishSummary(topic=topic, rows=len(events))
    _ready(settings, topic)
    policy = topic_timestamp_policy(settings, topic)
    if policy.timestamp_type != "CreateTime":
        summary.notes.append(
            f"topic {topic} uses {policy.timestamp_type}: the broker replaces the event timestamps"
        )
    events = _check_timestamps(
        events, policy, int(ps.future_margin_s * 1000), topic, on_future, summary
    )
    schedule: np.ndarray | None = None
    if speed is not None and speed < 0:
        raise ConfigError(f"--speed must be >= 0 (0 = as fast as possible), got {speed}")
    if speed and len(events):
        schedule = (events.submitted_us - events.submitted_us[0]) / 1e6 / speed
    if rate is not None:
        if rate <= 0:
            raise ConfigError(f"--rate must be > 0 events/s, got {rate}")
        by_rate = np.arange(len(events)) / rate
        schedule = by_rate if schedule is None else np.maximum(schedule, by_rate)

    config = producer_config(
        settings,
        **{
            **_failure_reports(summary),
            "linger.ms": ps.linger_ms,
            "compression.type": ps.compression,
            **(client_overrides or {}),  # the caller's word wins (a repeated name is no error)
        },
    )
    producer = Producer(config)
    update, stop_bar = _make_progress(len(events), progress)
    chunk = ps.chunk_rows
    n = len(events)
    handed = _Handed(0)
    failed_before = summary.failed
    started = time.perf_counter()
    try:
        workers = ps.json_threads
        starts = range(0, n, chunk)

        def build(k: int) -> Future[_Chunk]:
            return pool.submit(
                _chunk, events, starts[k], min(n, starts[k] + chunk), ps.validate_mode
            )

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="persona-json") as pool:
            ahead = deque(build(k) for k in range(min(workers, len(starts))))
            for k, a in enumerate(starts):
                b = min(n, a + chunk)
                payloads, keys, stamps, bad = ahead.popleft().result()
                # Failure reports are served between chunks, not while producing: serving one
                # takes the GIL, which a JSON thread may hold for milliseconds at a time.
                producer.poll(0)
                if k + workers < len(starts):
                    ahead.append(build(k + workers))
                summary.errors.extend(bad)
                summary.invalid += len(bad)
                _send_chunk(
                    producer,
                    topic,
                    payloads,
                    keys,
                    stamps,
                    schedule,
                    a,
                    started,
                    on_send,
                    handed,
                    bool(bad),
                )
                update(b)
        remaining = producer.flush(ps.flush_timeout_s)
    except KeyboardInterrupt:
        # Whatever was handed to the client still gets its chance, and is counted.
        stop_bar()
        remaining = producer.flush(ps.flush_timeout_s)
        _count_sent(summary, handed.value, failed_before, remaining)
        summary.notes.append(f"interrupted: {summary.sent} delivered, {remaining} undelivered")
        raise
    finally:
        stop_bar()
    _count_sent(summary, handed.value, failed_before, remaining)
    summary.elapsed_s = time.perf_counter() - started
    if remaining:
        summary.failed += remaining
        summary.delivery_errors["not delivered before the flush timeout"] += remaining
    if _REJECTED_RECORDS & set(summary.delivery_errors):
        summary.notes.append(
            "the broker rejected records (a timestamp outside message.timestamp.after.max.ms / "
            "before.max.ms fails its whole batch: INVALID_RECORD, _INVALID_DIFFERENT_RECORD)"
        )
    return summary


_Chunk = tuple[list[bytes | None], list[str], list[int], list[RowError]]


def _chunk(events: Events, a: int, b: int, mode: str) -> _Chunk:
    built = build_payloads(events, a, b)
    payloads: list[bytes | None] = list(built)
    bad: list[RowError] = []
    if mode == "full":
        for i, payload in enumerate(built):
            try:
                parse_survey_response(payload)
            except InvalidEvent as exc:
                bad.append(RowError(int(events.line[a + i]), f"schema: {exc}"))
                payloads[i] = None
    keys = events.respondent_id[a:b].tolist()
    stamps = (events.submitted_us[a:b] // 1000).tolist()
    return payloads, keys, stamps, bad


class _Handed:
    """How many messages the client has accepted, kept up to date even when interrupted."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


def _send_chunk(
    producer: Any,
    topic: str,
    payloads: list[bytes | None],
    keys: list[str],
    stamps: list[int],
    schedule: np.ndarray | None,
    offset: int,
    started: float,
    on_send: Callable[[int, float], None] | None,
    handed: _Handed,
    gaps: bool,
) -> None:
    """Hand one chunk to the client; ``gaps``: some payloads are None (rows refused), skipped."""
    produce = producer.produce
    poll = producer.poll
    done = 0  # counted after each produce returns, so an interrupt leaves it exact
    try:
        if schedule is None and on_send is None and not gaps:
            # As fast as possible: the bare produce loop plus one addition per message.
            for value, key, stamp in zip(payloads, keys, stamps, strict=True):
                try:
                    produce(topic, value, key, timestamp=stamp)
                except BufferError:  # local queue full: serve delivery reports, then retry
                    produce_waiting(producer, topic, value, key, timestamp=stamp)
                done += 1
            return
        due = -1.0  # events scheduled up to this many seconds after the start may go now
        for i, payload in enumerate(payloads):
            if payload is None:
                continue
            if schedule is not None and schedule[offset + i] > due:
                target = float(schedule[offset + i])
                while (now := time.perf_counter() - started) < target:
                    poll(min(target - now, 0.05))
                due = now + 0.002
            if on_send is not None:
                on_send(offset + i, time.perf_counter())
            try:
                produce(topic, payload, keys[i], timestamp=stamps[i])
            except BufferError:
                produce_waiting(producer, topic, payload, keys[i], timestamp=stamps[i])
            done += 1
    finally:
        handed.value += done


def publish_rows(
    settings: Settings,
    rows: pd.DataFrame,
    *,
    first_line: int = 1,
    source: str = "rows",
    on_invalid: OnInvalid = "skip",
    time_order: bool = False,
    **kwargs: Any,
) -> PublishSummary:
    """Validate a DataFrame of the data-file contract and publish its valid rows.

    The programmatic entry point (demo, end-to-end tests): ``publish_rows(settings,
    generate_month(spec, catalogue))``. ``kwargs`` go to :func:`publish_events`.
    """
    events, errors = validate_frame(rows, first_line)
    if errors and on_invalid == "fail":
        raise InvalidRowsError(source, errors)
    if time_order:
        events = events.in_time_order()
    topic = kwargs.pop("topic", None) or settings.topics.responses
    summary = PublishSummary(topic=topic, rows=len(rows), invalid=len(errors), errors=list(errors))
    ps: ProducerSettings = kwargs.get("producer_settings") or ProducerSettings()
    events = check_sample(events, summary, ps, on_invalid, source)
    summary.errors.sort(key=lambda e: e.line)
    return publish_events(settings, events, topic=topic, summary=summary, **kwargs)


def publish_file(settings: Settings, path: Path, **kwargs: Any) -> PublishSummary:
    """Read, validate and publish a CSV or Parquet file (see :func:`publish_rows`)."""
    df, first_line = read_events(path)
    return publish_rows(settings, df, first_line=first_line, source=str(path), **kwargs)


def publish_raw_frame(
    settings: Settings,
    rows: pd.DataFrame,
    *,
    topic: str | None = None,
    producer_settings: ProducerSettings | None = None,
) -> PublishSummary:
    """Send rows exactly as they are, without validation (to exercise the DLQ).

    Each row becomes a JSON object of its cells (numbers where a cell parses as one, including
    ``NaN``/``Infinity``; null for empty cells; text otherwise); the key is ``respondent_id``
    (none if empty); the Kafka timestamp is ``submitted_at`` when it parses with a zone, else the
    broker's clock.
    """
    import json
    import math

    import pandas as pd
    from confluent_kafka import Producer

    ps = producer_settings or ProducerSettings()
    topic = topic or settings.topics.responses
    _ready(settings, topic)
    summary = PublishSummary(topic=topic, rows=len(rows))
    config = producer_config(settings, **{**_failure_reports(summary), "linger.ms": ps.linger_ms})
    producer = Producer(config)
    handed = 0
    started = time.perf_counter()

    def cell(value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        if isinstance(value, (int, float, np.integer, np.floating)):
            return value.item() if isinstance(value, np.generic) else value
        text = str(value).strip()
        if not text:
            return None
        try:
            number = float(text)
        except ValueError:
            return text
        return (
            int(number) if number.is_integer() and "." not in text and "e" not in text else number
        )

    for record in rows.to_dict(orient="records"):
        body: dict[str, Any] = {"schema_version": 1}
        for name, value in record.items():
            if name.startswith("x") or name == "true_persona_id":
                body[name] = cell(value)
            elif isinstance(value, pd.Timestamp):
                body[name] = value.isoformat()
            else:
                body[name] = None if value is None else str(value)
        key = body.get("respondent_id") or None
        stamp = 0
        try:
            parsed = pd.Timestamp(str(record.get("submitted_at")))
            if parsed.tzinfo is not None:
                stamp = int(parsed.timestamp() * 1000)
        except (ValueError, TypeError):
            pass
        producer.produce(topic, json.dumps(body, allow_nan=True), key, timestamp=stamp)
        handed += 1
        producer.poll(0)
    remaining = producer.flush(ps.flush_timeout_s)
    _count_sent(summary, handed, 0, remaining)
    summary.failed += remaining
    summary.elapsed_s = time.perf_counter() - started
    return summary
