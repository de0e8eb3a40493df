"""drift_reports rows: one per window, the primary key is how instances agree on who publishes.

``claim`` inserts a window's row with ``ON CONFLICT DO NOTHING`` and what is to be sent (the
report, the retrain command, the topics' end offsets); the caller commits it *before* sending, and
monitor/delivery.py sends it and sets ``published_at``. The instance whose insert wins publishes;
another instance inserting the same window sees the conflict and adopts the stored decision.
Rows with ``published_at`` unset are the outbox: sent (once) at the next start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from personas.schemas import DriftReport, RetrainCommand

if TYPE_CHECKING:
    import psycopg

__all__ = ["StoredWindow", "claim", "fetch", "history", "unpublished"]


@dataclass(frozen=True)
class StoredWindow:
    window_id: str
    start: datetime
    end: datetime
    status: str
    model_version: int
    retrain_command_id: UUID | None
    decided_by: str | None
    published_at: datetime | None


_COLUMNS = (
    "window_id, window_start, window_end, status, model_version, retrain_command_id, decided_by,"
    " published_at"
)


def _row(row: tuple[Any, ...]) -> StoredWindow:
    return StoredWindow(*row)


def claim(
    conn: psycopg.Connection,
    report: DriftReport,
    *,
    command: RetrainCommand | None,
    marks: dict[str, dict[str, int]],
    decided_by: str,
) -> StoredWindow | None:
    """Insert the window's row, unpublished; None if it is ours, else the row another instance
    stored first."""
    document = report.model_dump(mode="json")
    inserted = conn.execute(
        "INSERT INTO drift_reports (window_id, window_start, window_end, event_count,"
        " model_version, status, tests, persona_mix, report_uri, mean_distance, sampled,"
        " retrain_command_id, decided_by, report, created_at, retrain_command, publish_marks)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s, %s::jsonb, %s,"
        " %s::jsonb, %s::jsonb)"
        " ON CONFLICT (window_id) DO NOTHING RETURNING window_id",
        (
            report.window_id,
            report.window_start,
            report.window_end,
            report.event_count,
            report.model_version,
            report.status,
            json.dumps(document["tests"]),
            json.dumps(document["persona_mix"]),
            report.report_uri,
            report.mean_distance,
            report.sampled,
            None if command is None else command.command_id,
            decided_by,
            json.dumps(document),
            report.created_at,
            None if command is None else command.model_dump_json(),
            json.dumps(marks),
        ),
    ).fetchone()
    if inserted is not None:
        return None
    return fetch(conn, report.window_id)


def fetch(conn: psycopg.Connection, window_id: str) -> StoredWindow | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM drift_reports WHERE window_id = %s", (window_id,)
    ).fetchone()
    return None if row is None else _row(row)


def history(conn: psycopg.Connection, limit: int, prefix: str | None = None) -> list[StoredWindow]:
    """The last ``limit`` windows (oldest first), optionally only ids starting with ``prefix``."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM drift_reports"
        " WHERE (%s::text IS NULL OR starts_with(window_id, %s::text))"
        " ORDER BY window_start DESC, window_id DESC LIMIT %s",
        (prefix, prefix, limit),
    ).fetchall()
    return [_row(r) for r in reversed(rows)]


def unpublished(conn: psycopg.Connection) -> list[str]:
    """Window ids committed but not yet acknowledged by Kafka (a monitor died in between)."""
    rows = conn.execute(
        "SELECT window_id FROM drift_reports WHERE published_at IS NULL ORDER BY window_start"
    ).fetchall()
    return [str(r[0]) for r in rows]
