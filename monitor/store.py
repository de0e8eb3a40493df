"""drift_reports rows: one per window, the primary key is how instances agree on who publishes.

``claim`` inserts a window's row inside the caller's transaction with ``ON CONFLICT DO NOTHING``.
If the row is new, the caller publishes to Kafka and then commits; a second instance inserting the
same window waits on the row lock until then, sees the conflict and publishes nothing (it adopts the
stored decision instead). If publishing fails the transaction rolls back and the window is
decided again (here or elsewhere): Kafka gets each window's report at least once, and exactly once
unless a process dies between the flush and the commit (consumers key on window_id, and retrain
commands carry a deterministic command_id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from personas.schemas import DriftReport

if TYPE_CHECKING:
    import psycopg

__all__ = ["StoredWindow", "claim", "fetch", "history"]


@dataclass(frozen=True)
class StoredWindow:
    window_id: str
    start: datetime
    end: datetime
    status: str
    model_version: int
    retrain_command_id: UUID | None
    decided_by: str | None


_COLUMNS = (
    "window_id, window_start, window_end, status, model_version, retrain_command_id, decided_by"
)


def _row(row: tuple[Any, ...]) -> StoredWindow:
    return StoredWindow(*row)


def claim(
    conn: psycopg.Connection,
    report: DriftReport,
    *,
    retrain_command_id: UUID | None,
    decided_by: str,
) -> StoredWindow | None:
    """Insert the window's row; None if it is ours, else the row another instance stored first."""
    document = report.model_dump(mode="json")
    inserted = conn.execute(
        "INSERT INTO drift_reports (window_id, window_start, window_end, event_count,"
        " model_version, status, tests, persona_mix, report_uri, mean_distance, sampled,"
        " retrain_command_id, decided_by, report, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s, %s::jsonb, %s)"
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
            retrain_command_id,
            decided_by,
            json.dumps(document),
            report.created_at,
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
