"""Replay a month (or any event-time range) to Kafka, in event-time order, at a speed factor.

Sources: a data file (CSV/Parquet) or the labelled events in PostgreSQL (``persona_labels``).
Events keep their own timestamps (``submitted_at`` is the Kafka timestamp), so every consumer
that works in event time (the monitor's windows) sees the same month whether it is replayed in a
minute or lived over thirty days. ``speed`` maps event time to wall time: 3600 sends an hour of
events per second, 0 sends as fast as possible.

Replaying twice sends the same ``event_id`` s again. Downstream that means: the stream app labels
them again and PostgreSQL keeps one row per ``event_id`` (upsert), so the table has no
duplicates; ``persona-labels`` gets a second message per event (possibly from a newer model);
event-time consumers see the events again. See docs/producer.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from personas.catalogue import FEATURES
from personas.errors import ConfigError
from personas.settings import Settings
from producer.files import read_events
from producer.publisher import InvalidRowsError, PublishSummary, check_sample, publish_events
from producer.settings import ProducerSettings
from producer.validation import Events, RowError, validate_frame

__all__ = ["load_db_range", "load_file_range", "parse_time", "replay"]


def parse_time(text: str) -> int:
    """A ``--start``/``--end`` value → µs since the epoch. Dates and zone-less times are UTC."""
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ConfigError(f"not a date or ISO 8601 time: {text!r} (e.g. 2025-03-01)") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.tz_convert("UTC").value // 1000)


def _in_range(events: Events, start_us: int | None, end_us: int | None) -> Events:
    keep = np.ones(len(events), dtype=bool)
    if start_us is not None:
        keep &= events.submitted_us >= start_us
    if end_us is not None:
        keep &= events.submitted_us < end_us
    return events if keep.all() else events.take(np.flatnonzero(keep))


def load_file_range(
    path: Path, start_us: int | None = None, end_us: int | None = None
) -> tuple[Events, list[RowError], int]:
    """Valid events of a file within [start, end), in event-time order; (events, errors, rows)."""
    df, first_line = read_events(path)
    events, errors = validate_frame(df, first_line)
    return _in_range(events, start_us, end_us).in_time_order(), errors, len(df)


def load_db_range(
    settings: Settings, start_us: int | None = None, end_us: int | None = None
) -> Events:
    """Events of ``persona_labels`` within [start, end), in event-time order (event_id breaks ties).

    Ground truth is not stored there, so replayed events carry ``true_persona_id`` null; "line"
    numbers are positions in the query result.
    """
    from datetime import UTC, datetime

    from personas import db

    def as_dt(us: int | None) -> datetime | None:
        return None if us is None else datetime.fromtimestamp(us / 1e6, tz=UTC)

    columns = ", ".join(FEATURES)
    sql = (
        f"SELECT event_id::text, respondent_id, "
        f"(extract(epoch FROM submitted_at) * 1000000)::bigint, {columns} "
        "FROM persona_labels "
        "WHERE (%(start)s::timestamptz IS NULL OR submitted_at >= %(start)s) "
        "AND (%(end)s::timestamptz IS NULL OR submitted_at < %(end)s) "
        "ORDER BY submitted_at, event_id"
    )
    with db.connect(settings) as conn:
        rows = conn.execute(sql, {"start": as_dt(start_us), "end": as_dt(end_us)}).fetchall()
    n = len(rows)
    if n == 0:
        return Events(
            event_id=np.empty(0, object),
            respondent_id=np.empty(0, object),
            submitted_us=np.empty(0, np.int64),
            X=np.empty((0, len(FEATURES))),
            true_persona_id=np.empty(0, np.int64),
            line=np.empty(0, np.int64),
        )
    cols = list(zip(*rows, strict=True))
    return Events(
        event_id=np.array(cols[0], dtype=object),
        respondent_id=np.array(cols[1], dtype=object),
        submitted_us=np.array(cols[2], dtype=np.int64),
        X=np.array(cols[3:], dtype=np.float64).T.copy(),
        true_persona_id=np.full(n, -1, dtype=np.int64),
        line=np.arange(1, n + 1, dtype=np.int64),
    )


def replay(
    settings: Settings,
    *,
    file: Path | None = None,
    from_db: bool = False,
    speed: float = 0.0,
    start: str | None = None,
    end: str | None = None,
    on_invalid: str = "skip",
    **kwargs: Any,
) -> PublishSummary:
    """Replay ``file`` or the database over [start, end) at ``speed`` (0 = as fast as possible).

    ``kwargs`` go to :func:`producer.publisher.publish_events` (topic, rate, on_future, on_send…).
    """
    if (file is None) == (not from_db):
        raise ConfigError("replay needs exactly one source: --file FILE or --from-db")
    start_us = parse_time(start) if start else None
    end_us = parse_time(end) if end else None
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise ConfigError(f"--end ({end}) must be after --start ({start})")
    if file is not None:
        events, errors, rows = load_file_range(file, start_us, end_us)
        if errors and on_invalid == "fail":
            raise InvalidRowsError(str(file), errors)
    else:
        events, errors = load_db_range(settings, start_us, end_us), []
        rows = len(events)
    topic = kwargs.pop("topic", None) or settings.topics.responses
    summary = PublishSummary(topic=topic, rows=rows, invalid=len(errors), errors=list(errors))
    if rows and len(events) < rows - len(errors):
        summary.notes.append(f"{rows - len(errors) - len(events)} valid row(s) outside the range")
    ps: ProducerSettings = kwargs.get("producer_settings") or ProducerSettings()
    events = check_sample(events, summary, ps, on_invalid, str(file or "persona_labels"))
    summary.errors.sort(key=lambda e: e.line)
    return publish_events(settings, events, topic=topic, speed=speed, summary=summary, **kwargs)
