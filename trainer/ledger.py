"""The command ledger (table ``trainer_commands``, migration 003): dedup and an audit trail.

Kafka delivers a command at least once (offsets are committed after handling), and the monitor
may ask for the same range twice; the ledger makes both harmless. A command is *trained* once it
reached a final training status (promoted, gate_failed, candidate_persona); a later command for the
same model and the same range is a duplicate. A command left in ``received`` (the trainer died
mid-fit) is simply handled again.

``training_lock`` serialises training per model name across processes (the service, the Python API
and the CLI) with a PostgreSQL advisory lock, so two fits never race to move the alias.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from personas import db
from personas.schemas import RetrainCommand
from personas.settings import Settings

__all__ = [
    "TRAINED",
    "CommandRecord",
    "command_record",
    "finish",
    "previous_training",
    "record_received",
    "training_lock",
]

#: Statuses that mean "this range was trained" (whatever the verdict).
TRAINED = ("promoted", "gate_failed", "candidate_persona")


def record_received(settings: Settings, cmd: RetrainCommand) -> None:
    with db.connect(settings, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO trainer_commands (command_id, model_name, range_start, range_end, reason,"
            " requested_by, requested_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (command_id) DO NOTHING",
            (
                cmd.command_id,
                settings.model_name,
                cmd.range_start,
                cmd.range_end,
                cmd.reason,
                cmd.requested_by,
                cmd.requested_at,
            ),
        )


@dataclass(frozen=True)
class CommandRecord:
    """One command's row: its status and what it decided (version, run) for which range."""

    model_name: str
    status: str
    version: int | None
    run_id: str | None
    range_start: datetime
    range_end: datetime


def command_record(
    settings: Settings, command_id: UUID, *, any_model: bool = False
) -> CommandRecord | None:
    """The command's row for this model (or, ``any_model``, whichever model received it: a
    command id is recorded once, so the dedup looks across models); None if never received."""
    query = (
        "SELECT model_name, status, version, run_id, range_start, range_end FROM trainer_commands"
        " WHERE command_id = %s"
    )
    args: tuple[Any, ...] = (command_id,)
    if not any_model:
        query += " AND model_name = %s"
        args = (command_id, settings.model_name)
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute(query, args).fetchone()
    return None if row is None else CommandRecord(*row)


def previous_training(settings: Settings, cmd: RetrainCommand) -> dict[str, Any] | None:
    """The command (this one included, if redelivered) that already trained this exact range."""
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT command_id::text, status, version FROM trainer_commands"
            " WHERE model_name = %s AND range_start = %s AND range_end = %s"
            " AND status = ANY(%s) ORDER BY finished_at LIMIT 1",
            (settings.model_name, cmd.range_start, cmd.range_end, list(TRAINED)),
        ).fetchone()
    if row is None:
        return None
    return {"command_id": row[0], "status": row[1], "version": row[2]}


def finish(
    settings: Settings,
    command_id: UUID,
    status: str,
    detail: str,
    *,
    version: int | None = None,
    run_id: str | None = None,
) -> None:
    with db.connect(settings, autocommit=True) as conn:
        conn.execute(
            "UPDATE trainer_commands SET status = %s, detail = %s, version = %s, run_id = %s,"
            " finished_at = now() WHERE command_id = %s",
            (status, detail[:2000], version, run_id, command_id),
        )


@contextmanager
def training_lock(settings: Settings) -> Iterator[None]:
    """Hold a session advisory lock named after the model while training (blocks, no timeout)."""
    key = f"persona-trainer:{settings.pg_schema}:{settings.model_name}"
    with db.connect(settings, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
