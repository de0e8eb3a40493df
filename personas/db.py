"""PostgreSQL access shared by the services: connections and versioned migrations.

Migrations are the ``NNN_name.sql`` files of ``infra/migrations``; each applies once per schema,
recorded in ``schema_migrations``, so re-running is a no-op. Every query the services send is
parameterised; the only interpolated identifier is the schema name, validated by Settings.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import TYPE_CHECKING

from personas.errors import ServiceUnavailable
from personas.settings import Settings

if TYPE_CHECKING:
    import psycopg

__all__ = ["apply_migrations", "check_postgres", "connect", "migrations"]

_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]*$")
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def connect(
    settings: Settings, *, database: str | None = None, autocommit: bool = False, timeout: float = 5
) -> psycopg.Connection:
    """Open a connection with ``search_path`` set to the configured schema; names a dead server."""
    import psycopg

    try:
        conn = psycopg.connect(
            **settings.pg_params(database),  # type: ignore[arg-type]  # libpq keywords
            autocommit=autocommit,
            connect_timeout=max(1, int(timeout)),
            options=f"-c search_path={settings.pg_schema}",
            application_name="persona-stream",
        )
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(
            "PostgreSQL",
            settings.pg_dsn(database, with_password=False),
            str(exc).strip().splitlines()[0] if str(exc).strip() else "connection failed",
            "is the stack up? `make up` / `persona stack status`",
        ) from None
    return conn


def check_postgres(settings: Settings, timeout: float = 3) -> None:
    with connect(settings, autocommit=True, timeout=timeout) as conn:
        conn.execute("SELECT 1")


def migrations() -> list[tuple[str, str]]:
    """(version, sql) of every migration, in order."""
    folder = resources.files("infra").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append((entry.name.removesuffix(".sql"), entry.read_text()))
    return sorted(found)


def apply_migrations(settings: Settings) -> list[str]:
    """Create the schema if needed and apply pending migrations; returns the versions applied."""
    schema = settings.pg_schema
    if not _SCHEMA.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    applied: list[str] = []
    with connect(settings) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        # One migrator at a time per schema (two services starting together).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"migrate:{schema}",))
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, sql in migrations():
            if version in done:
                continue
            conn.execute(sql)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            applied.append(version)
        conn.commit()
    return applied
