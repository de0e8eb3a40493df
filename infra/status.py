"""`persona status`: the live system on one screen, from the sources of truth themselves.

Nothing here needs Prometheus or a service's cooperation: Kafka says which workers are in each
consumer group, which partitions they hold and how far behind they are (committed offsets
against high watermarks); the topics' own timestamps say how many events went to the DLQ in the
last hour; MLflow says which version is champion and ``model-updates`` since when; PostgreSQL
holds the last windows and the trainer's open commands; the REST service answers ``/health``.
Each source is asked on its own, so one that is down is shown as down (with why) and the rest of
the screen still fills.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from personas.settings import Settings

__all__ = ["Group", "SystemStatus", "collect", "render"]

_T = TypeVar("_T")


@dataclass(frozen=True)
class Member:
    client_id: str
    host: str
    partitions: list[int]


@dataclass(frozen=True)
class Group:
    """One service's consumer group: who is in it and, for the labellers, how far behind."""

    service: str
    group_id: str
    state: str
    members: list[Member]
    lag: dict[int, int] = field(default_factory=dict)  # partition → events not yet committed

    @property
    def up(self) -> bool:
        return bool(self.members)


@dataclass(frozen=True)
class Champion:
    version: int | None
    since: datetime | None  # when model-updates last announced it


@dataclass(frozen=True)
class Window:
    window_id: str
    start: datetime
    end: datetime
    status: str
    event_count: int
    model_version: int


@dataclass(frozen=True)
class Command:
    command_id: str
    status: str
    requested_by: str
    received_at: datetime
    range_start: datetime
    range_end: datetime


@dataclass(frozen=True)
class SystemStatus:
    taken_at: datetime
    groups: list[Group]
    rest: dict[str, Any] | None
    champion: Champion | None
    windows: list[Window]
    open_commands: list[Command]
    responses_last_hour: int | None
    dead_letters_last_hour: int | None
    errors: dict[str, str]  # source → why it could not be read

    @property
    def dlq_share(self) -> float | None:
        if not self.responses_last_hour or self.dead_letters_last_hour is None:
            return None
        return self.dead_letters_last_hour / self.responses_last_hour

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dlq_share_last_hour"] = self.dlq_share
        for group, raw in zip(self.groups, out["groups"], strict=True):
            raw["up"] = group.up
            raw["total_lag"] = sum(group.lag.values()) if group.lag else None
        plain: dict[str, Any] = json.loads(json.dumps(out, default=_iso))
        return plain


def _iso(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


# ------------------------------------------------------------------ collecting


def collect(settings: Settings, *, timeout: float = 5.0) -> SystemStatus:
    """Ask every source once (each bounded by ``timeout``); what fails is in ``errors``."""
    from monitor.settings import MonitorSettings
    from serving.settings import ServeSettings
    from stream_app.settings import StreamSettings
    from trainer.settings import TrainerSettings

    errors: dict[str, str] = {}

    def attempt(source: str, read: Callable[[], _T], empty: _T) -> _T:
        try:
            return read()
        except Exception as exc:  # a source that is down or refuses: shown, never fatal
            errors[source] = f"{type(exc).__name__}: {exc}"[:300]
            return empty

    stream = StreamSettings()
    groups_wanted = [
        ("stream", stream.resolved_app_id(settings), settings.topics.responses),
        ("monitor", MonitorSettings().group_id, None),
        ("trainer", TrainerSettings().group_id, None),
    ]
    no_groups: list[Group] = []
    no_counts: dict[str, int] = {}
    no_windows: list[Window] = []
    no_commands: list[Command] = []
    groups = attempt("kafka", lambda: _groups(settings, groups_wanted, timeout), no_groups)
    counts = attempt(
        "kafka topics",
        lambda: _last_hour(settings, [settings.topics.responses, settings.topics.dlq], timeout),
        no_counts,
    )
    serve = ServeSettings()
    rest = attempt("rest", lambda: _rest_health(serve.host, serve.port, timeout), None)
    champion = attempt("mlflow", lambda: _champion(settings, timeout), None)
    windows = attempt("postgres", lambda: _windows(settings, timeout), no_windows)
    commands = attempt("postgres ledger", lambda: _open_commands(settings, timeout), no_commands)
    return SystemStatus(
        taken_at=datetime.now(UTC),
        groups=groups,
        rest=rest,
        champion=champion,
        windows=windows,
        open_commands=commands,
        responses_last_hour=counts.get(settings.topics.responses),
        dead_letters_last_hour=counts.get(settings.topics.dlq),
        errors=errors,
    )


def _groups(
    settings: Settings, wanted: list[tuple[str, str, str | None]], timeout: float
) -> list[Group]:
    """Each group's members and assignments; for groups with a ``lag_topic``, lag per partition."""
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    from personas.kafka import admin_config

    admin = AdminClient(admin_config(settings))
    ids = [group_id for _, group_id, _ in wanted]
    described = admin.describe_consumer_groups(ids, request_timeout=timeout)
    found: list[Group] = []
    for service, group_id, lag_topic in wanted:
        description = described[group_id].result(timeout=timeout)
        members = [
            Member(
                m.client_id,
                m.host,
                sorted(
                    tp.partition for tp in (m.assignment.topic_partitions if m.assignment else [])
                ),
            )
            for m in description.members
        ]
        lag: dict[int, int] = {}
        if lag_topic is not None:
            request = [ConsumerGroupTopicPartitions(group_id)]
            offsets = admin.list_consumer_group_offsets(request, request_timeout=timeout)
            committed = {
                tp.partition: tp.offset
                for tp in offsets[group_id].result(timeout=timeout).topic_partitions
                if tp.topic == lag_topic
            }
            high = _high_watermarks(settings, lag_topic, timeout)
            lag = {p: h - max(committed.get(p, 0), 0) for p, h in sorted(high.items())}
        state = getattr(description.state, "name", str(description.state)).lower()
        found.append(Group(service, group_id, state, members, lag))
    return found


def _consumer(settings: Settings) -> Any:
    from confluent_kafka import Consumer

    from personas.kafka import consumer_config

    return Consumer(consumer_config(settings, "persona-status", **{"enable.auto.commit": False}))


def _high_watermarks(settings: Settings, topic: str, timeout: float) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    consumer = _consumer(settings)
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        if meta.error is not None:
            raise RuntimeError(str(meta.error))
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in meta.partitions
        }
    finally:
        consumer.close()


def _last_hour(settings: Settings, topics: list[str], timeout: float) -> dict[str, int]:
    """Messages each topic received in the last hour, from the broker's timestamp index."""
    from confluent_kafka import TopicPartition

    since_ms = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    consumer = _consumer(settings)
    counts: dict[str, int] = {}
    try:
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
            if meta.error is not None:
                raise RuntimeError(f"{topic}: {meta.error}")
            parts = [TopicPartition(topic, p, since_ms) for p in meta.partitions]
            starts = consumer.offsets_for_times(parts, timeout=timeout)
            total = 0
            for tp in starts:
                high = consumer.get_watermark_offsets(
                    TopicPartition(topic, tp.partition), timeout=timeout
                )[1]
                total += 0 if tp.offset < 0 else max(0, high - tp.offset)  # -1: nothing since
            counts[topic] = total
    finally:
        consumer.close()
    return counts


def _rest_health(host: str, port: int, timeout: float) -> dict[str, Any]:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with urllib.request.urlopen(f"http://{target}:{port}/health", timeout=timeout) as resp:
        health: dict[str, Any] = json.load(resp)
    return health


def _champion(settings: Settings, timeout: float) -> Champion:
    from personas import registry

    version = registry.champion_version(settings)
    since = None
    if version is not None:
        since = _announced(settings, version, timeout)
    return Champion(version, since)


def _announced(settings: Settings, version: int, timeout: float) -> datetime | None:
    """When model-updates last said this model's champion became ``version`` (None: no message)."""
    from confluent_kafka import TopicPartition

    from personas.schemas import ModelUpdated

    topic = settings.topics.model_updates
    consumer = _consumer(settings)
    newest: datetime | None = None
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
        parts = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                parts.append(TopicPartition(topic, p, max(low, high - 50)))
        consumer.assign(parts)
        deadline = time.monotonic() + timeout
        remaining = len(parts)
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            try:
                update = ModelUpdated.model_validate_json(msg.value() or b"")
            except ValueError:
                continue
            if update.model_name == settings.model_name and update.version == version:
                newest = update.updated_at if newest is None else max(newest, update.updated_at)
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, msg.partition()), cached=True
            )
            if msg.offset() + 1 >= high:
                remaining -= 1
    finally:
        consumer.close()
    return newest


def _windows(settings: Settings, timeout: float, limit: int = 6) -> list[Window]:
    from personas import db

    with db.connect(settings, autocommit=True, timeout=timeout) as conn:
        rows = conn.execute(
            "SELECT window_id, window_start, window_end, status, event_count, model_version "
            "FROM drift_reports ORDER BY window_end DESC, window_id DESC LIMIT %s",
            (limit,),
        ).fetchall()
    return [Window(*row) for row in reversed(rows)]


def _open_commands(settings: Settings, timeout: float) -> list[Command]:
    """Retrain commands the trainer received and has not decided yet (being trained, or held
    for a person: candidate_persona waits for `persona train accept`)."""
    from personas import db

    with db.connect(settings, autocommit=True, timeout=timeout) as conn:
        rows = conn.execute(
            "SELECT command_id::text, status, requested_by, received_at, range_start, range_end "
            "FROM trainer_commands WHERE model_name = %s "
            "AND status IN ('received', 'candidate_persona') ORDER BY received_at",
            (settings.model_name,),
        ).fetchall()
    return [Command(*row) for row in rows]


# ------------------------------------------------------------------ rendering


def render(status: SystemStatus, *, colour: Callable[[str, str], str] = lambda s, _: s) -> str:
    """The one screen. ``colour(text, name)`` may add terminal colours (green/red/yellow)."""
    up = colour("up", "green")
    down = colour("down", "red")
    lines = [f"Persona Stream — {status.taken_at:%Y-%m-%d %H:%M:%S} UTC", ""]
    lines.append("services")
    for group in status.groups:
        state = up if group.up else down
        members = ", ".join(
            f"{m.client_id or '?'}@{m.host.lstrip('/')} p{_ranges(m.partitions)}"
            for m in group.members
        )
        lines.append(f"  {group.service:<9} {state:<4} group {group.group_id} ({group.state})")
        if members:
            lines.append(f"            {len(group.members)} member(s): {members}")
        if group.lag:
            total = sum(group.lag.values())
            per = " ".join(f"p{p}:{n}" for p, n in group.lag.items())
            lines.append(f"            consumer lag {total:,} events ({per})")
    if status.rest is not None:
        rest = status.rest
        lines.append(
            f"  {'rest':<9} {up:<4} model v{rest.get('model_version')} ({rest.get('status')})"
        )
    else:
        lines.append(f"  {'rest':<9} {down:<4} /health did not answer")
    lines.append("")
    champion = status.champion
    if champion is None:
        lines.append("champion  unknown (MLflow did not answer)")
    elif champion.version is None:
        lines.append("champion  none registered (the stream labels with the vendor centroids)")
    else:
        since = f" since {champion.since:%Y-%m-%d %H:%M} UTC" if champion.since else ""
        lines.append(f"champion  version {champion.version}{since}")
    share = status.dlq_share
    if status.dead_letters_last_hour is None:
        lines.append("DLQ       unknown (Kafka did not answer)")
    else:
        pct = "" if share is None else f", {share:.1%} of {status.responses_last_hour:,} events"
        text = f"{status.dead_letters_last_hour:,} dead letters in the last hour{pct}"
        lines.append("DLQ       " + (colour(text, "yellow") if share and share > 0.05 else text))
    lines.append("")
    lines.append("last windows")
    if not status.windows:
        lines.append("  none yet")
    palette = {"ok": "green", "warning": "yellow", "drift": "red", "insufficient_data": "yellow"}
    for w in status.windows:
        lines.append(
            f"  {w.start:%Y-%m-%d %H:%M} → {w.end:%Y-%m-%d %H:%M}  "
            f"{colour(f'{w.status:<17}', palette.get(w.status, 'yellow'))} "
            f"{w.event_count:>7,} events  model v{w.model_version}"
        )
    lines.append("")
    lines.append(f"open retrain commands: {len(status.open_commands)}")
    for c in status.open_commands:
        what = "held: `persona train accept`" if c.status == "candidate_persona" else "training"
        lines.append(
            f"  {c.command_id[:8]} {what}, {c.range_start:%Y-%m-%d}..{c.range_end:%Y-%m-%d} "
            f"(from {c.requested_by}, {c.received_at:%H:%M})"
        )
    for source, why in status.errors.items():
        lines.append(colour(f"! {source}: {why}", "red"))
    return "\n".join(lines)


def _ranges(partitions: list[int]) -> str:
    """[0, 1, 2, 5] → '0-2,5'."""
    if not partitions:
        return "-"
    out: list[str] = []
    start = prev = partitions[0]
    for p in [*partitions[1:], None]:
        if p is not None and p == prev + 1:
            prev = p
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if p is not None:
            start = prev = p
    return ",".join(out)
