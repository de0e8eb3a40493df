"""What one label row costs PostgreSQL, by the way it is written (the staircase's steps 5–6).

    .venv/bin/python bench/pg_label_writes.py [--rows 100000] [--batch 2000]

Writes the same rows into an empty ``persona_labels`` of a schema of its own, one transaction per
batch, four ways, and prints rows/s with the CPU per row of this process (the client) and of the
connection's PostgreSQL backend (from /proc: needs the server on this machine):

* binary COPY into a session temp table, then ``INSERT … SELECT … ON CONFLICT (event_id) DO
  NOTHING`` (the worker's ``stream_app.sink`` and the staircase; idempotent) — measured first and
  last, to show the drift of a shared machine;
* binary COPY straight into the table (not idempotent: the lower bound of any COPY path);
* ``INSERT … SELECT * FROM unnest(%s::uuid[], …) ON CONFLICT DO NOTHING`` with the columns as
  binary arrays (idempotent, one statement, no staging).
The schema is dropped at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from infra.sampling import cpu_seconds  # noqa: E402
from personas import db  # noqa: E402
from personas.settings import Settings  # noqa: E402
from stream_app.labelling import LABEL_COLUMNS, LABEL_TYPES  # noqa: E402

COLUMNS = ", ".join(LABEL_COLUMNS)
STAGE = "CREATE TEMP TABLE IF NOT EXISTS stage (LIKE persona_labels) ON COMMIT DELETE ROWS"
Rows = Sequence[tuple[Any, ...]]


def staged(conn: Any, rows: Rows) -> None:
    with conn.cursor() as cur:
        with cur.copy(f"COPY stage ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(LABEL_TYPES))
            for row in rows:
                copy.write_row(row)
        cur.execute(
            f"INSERT INTO persona_labels ({COLUMNS}) SELECT {COLUMNS} FROM stage "
            "ON CONFLICT (event_id) DO NOTHING"
        )


def direct(conn: Any, rows: Rows) -> None:
    sql = f"COPY persona_labels ({COLUMNS}) FROM STDIN (FORMAT BINARY)"
    with conn.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types(list(LABEL_TYPES))
        for row in rows:
            copy.write_row(row)


def unnest(conn: Any, rows: Rows) -> None:
    arrays = ", ".join(f"%s::{t}[]" for t in LABEL_TYPES)
    conn.execute(
        f"INSERT INTO persona_labels ({COLUMNS}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (event_id) DO NOTHING",
        [list(column) for column in zip(*rows, strict=True)],
        binary=True,
    )


def label_rows(n: int) -> list[tuple[Any, ...]]:
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 3.0, (n, 10)).tolist()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    labelled = (1, "Pragmatic Pat", 1.5, 0.5, False, 0, start)
    return [
        (uuid.uuid4(), f"resp-{i:016x}", start + timedelta(seconds=i), *x[i], *labelled)
        for i in range(n)
    ]


def measure(
    settings: Settings, rows: Rows, batch: int, write: Callable[[Any, Rows], None], setup: str
) -> tuple[float, float, float, int]:
    """(rows/s, client µs/row, server µs/row, rows stored) of one way into an empty table."""
    with db.connect(settings) as conn:
        conn.execute("TRUNCATE persona_labels")
        if setup:
            conn.execute(setup)
        conn.commit()
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        backend = int(row[0]) if row else 0
        server0, client0, wall0 = cpu_seconds(backend), time.process_time(), time.perf_counter()
        for i in range(0, len(rows), batch):
            write(conn, rows[i : i + batch])
            conn.commit()
        wall = time.perf_counter() - wall0
        client = time.process_time() - client0
        server = cpu_seconds(backend) - server0
        counted = conn.execute("SELECT count(*) FROM persona_labels").fetchone()
    n = len(rows)
    return n / wall, client / n * 1e6, server / n * 1e6, int(counted[0]) if counted else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    base = Settings()
    settings = base.model_copy(update={"pg_schema": f"bench_pgwrites_{uuid.uuid4().hex[:8]}"})
    db.apply_migrations(settings)
    rows = label_rows(args.rows)
    ways: list[tuple[str, Callable[[Any, Rows], None], str]] = [
        ("binary COPY -> temp table, INSERT ON CONFLICT", staged, STAGE),
        ("binary COPY into the table (not idempotent)", direct, ""),
        ("INSERT SELECT unnest(binary arrays) ON CONFLICT", unnest, ""),
        ("binary COPY -> temp table, INSERT ON CONFLICT", staged, STAGE),
    ]
    print("| way | rows/s | client CPU µs/row | PostgreSQL CPU µs/row | rows |")
    print("|---|---:|---:|---:|---:|")
    try:
        for name, write, setup in ways:
            rate, client, server, stored = measure(settings, rows, args.batch, write, setup)
            print(f"| {name} | {rate:,.0f} | {client:.1f} | {server:.1f} | {stored:,} |")
    finally:
        with db.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
    print(f"\n{args.rows:,} rows in batches of {args.batch:,}, one transaction per batch")


if __name__ == "__main__":
    main()
