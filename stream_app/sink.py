"""PostgreSQL sink: each batch of label rows in one transaction, idempotent by ``event_id``.

Rows go by ``COPY … (FORMAT BINARY)``, the payload built from the batch's columns by
``stream_app.pg_copy``, **straight into ``persona_labels``** when the batch is expected to be new:
almost every batch is, and the bare COPY costs PostgreSQL ≈ 4 µs of CPU per row against ≈ 6.5 µs
through a staging table (docs/benchmarks/stream_app.md, ``bench/pg_label_writes.py``). A batch
holding an ``event_id`` that is already there (a re-delivery after a crash or a rebalance, a
producer retry) makes that COPY fail on the primary key; the transaction, which holds nothing
else, is rolled back and the batch goes the idempotent way: COPY into a temporary table, then one
``INSERT … SELECT … ON CONFLICT (event_id) DO NOTHING``, so the re-delivered event finds its row
and adds nothing. After such a batch the next ones go the idempotent way too until one of them
turns out to be all new (a re-read backlog is duplicates batch after batch: only its first batch
pays for the failed COPY). While PostgreSQL is down or failing the sink retries with exponential
backoff and says what it is waiting for; the batch stays unacknowledged meanwhile, which is the
back-pressure.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING

from personas import db
from personas.errors import PersonaError, ServiceUnavailable, Stopping
from personas.settings import Settings
from stream_app.backoff import Backoff
from stream_app.labelling import LabelRows
from stream_app.pg_copy import COPY_COLUMNS, binary_copy

if TYPE_CHECKING:
    import psycopg

__all__ = ["PgSink"]

log = logging.getLogger(__name__)

_COLUMNS = ", ".join(COPY_COLUMNS)
_STAGE = "persona_labels_incoming"
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} "
    "(LIKE persona_labels INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
)
_COPY = f"COPY {_STAGE} ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_COPY_DIRECT = f"COPY persona_labels ({_COLUMNS}) FROM STDIN (FORMAT BINARY)"
_MERGE = (
    f"INSERT INTO persona_labels ({_COLUMNS}) SELECT {_COLUMNS} FROM {_STAGE} "
    "ON CONFLICT (event_id) DO NOTHING"
)
#: What identifies an event's payload: a re-delivery repeats it exactly; a different one under the
#: same event_id is a conflict (the producer reused an id), counted and said, the first row kept.
_PAYLOAD = ("respondent_id", "submitted_at", *(f"x{i}" for i in range(1, 11)))
_CONFLICTS = (
    f"SELECT DISTINCT s.event_id::text FROM {_STAGE} s JOIN persona_labels p USING (event_id) "
    f"WHERE ({', '.join('s.' + c for c in _PAYLOAD)}) IS DISTINCT FROM "
    f"({', '.join('p.' + c for c in _PAYLOAD)}) ORDER BY 1"
)


class PgSink:
    """Writes label rows; one connection, re-opened after failures."""

    def __init__(
        self, settings: Settings, stop: threading.Event, *, max_backoff: float = 30.0
    ) -> None:
        self.settings = settings
        self.stop = stop
        self.max_backoff = max_backoff
        self._conn: psycopg.Connection | None = None
        self._staged = False
        self.retries = 0
        #: whether the next batch is tried by a COPY straight into the table (see the module doc)
        self.direct = True
        self.direct_writes = 0  # batches written by the direct COPY
        self.staged_writes = 0  # batches written through the staging table
        #: event ids of the last write that arrived again with another payload (first row kept)
        self.last_conflicts: list[str] = []

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = db.connect(self.settings)
            self._staged = False
        return self._conn

    def warm_up(self) -> None:
        """Connect and create the staging table (raises ServiceUnavailable when PG is down)."""
        import psycopg

        try:
            conn = self._connection()
            with conn.cursor() as cur:
                cur.execute(_CREATE_STAGE)
            conn.commit()
            self._staged = True
        except psycopg.Error as exc:
            self.close()
            raise ServiceUnavailable(
                "PostgreSQL", self.settings.pg_dsn(with_password=False), str(exc).strip()
            ) from None

    def write_once(self, rows: LabelRows, payload: bytes | None = None) -> int:
        """One attempt, committed in one transaction; returns how many rows were new."""
        from psycopg.errors import UniqueViolation

        if payload is None:
            payload = binary_copy(rows)
        conn = self._connection()
        if self.direct:
            try:
                with conn.cursor() as cur, cur.copy(_COPY_DIRECT) as copy:
                    copy.write(payload)
                conn.commit()
            except UniqueViolation:
                self.direct = False
                self._roll_back(conn)  # the batch was the transaction's only work
            except BaseException:
                self.close()
                raise
            else:
                self.direct_writes += 1
                self.last_conflicts = []
                return len(rows)
        return self._write_staged(conn, rows, payload)

    def _roll_back(self, conn: psycopg.Connection) -> None:
        try:
            conn.rollback()
        except BaseException:
            self.close()
            raise

    def _write_staged(self, conn: psycopg.Connection, rows: LabelRows, payload: bytes) -> int:
        """The idempotent way: stage, ``INSERT … ON CONFLICT DO NOTHING``, name the conflicts."""
        try:
            with conn.cursor() as cur:
                if not self._staged:
                    cur.execute(_CREATE_STAGE)  # once per connection (temp tables are per session)
                    conn.commit()
                    self._staged = True
                with cur.copy(_COPY) as copy:
                    copy.write(payload)  # the whole binary stream, built from the columns
                cur.execute(_MERGE)
                inserted = cur.rowcount
                conflicts: list[str] = []
                if inserted < len(rows):  # only a batch with duplicates pays for the check
                    conflicts = [r[0] for r in cur.execute(_CONFLICTS).fetchall()]
            conn.commit()
            self.last_conflicts = conflicts
        except BaseException:
            self.close()
            raise
        self.staged_writes += 1
        self.direct = inserted == len(rows)  # all new: the re-delivered part is behind us
        return inserted

    def write(self, rows: LabelRows) -> int:
        """Write until it succeeds (retrying with backoff) or the worker stops (``Stopping``)."""
        import psycopg

        if not len(rows):
            return 0
        payload = binary_copy(rows)  # once, however many attempts
        backoff = Backoff(self.stop, longest=self.max_backoff)
        while True:
            try:
                inserted = self.write_once(rows, payload)
                if backoff.attempt:
                    log.info("PostgreSQL is back after %d retries", backoff.attempt)
                return inserted
            except (psycopg.Error, PersonaError) as exc:
                if isinstance(exc, Stopping):
                    raise
                self.retries += 1
                reason = (
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                )
                log.warning(
                    "waiting for PostgreSQL at %s to take %d label rows: %s (attempt %d, retry in %.1fs)",
                    self.settings.pg_dsn(with_password=False),
                    len(rows),
                    reason,
                    backoff.attempt + 1,
                    backoff.next_delay(),
                )
                backoff.wait()

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                self._conn.close()
            self._conn = None
