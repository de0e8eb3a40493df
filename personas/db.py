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

__all__ = [
    "apply_migrations",
    "check_postgres",
    "connect",
    "explain_postgres_error",
    "label_counts",
    "migrations",
    "pending_migrations",
]

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
        what, fix = explain_postgres_error(str(exc))
        raise ServiceUnavailable(
            "PostgreSQL", settings.pg_dsn(database, with_password=False), what, fix
        ) from None
    return conn


#: libpq's words -> (what happened, the fix), most specific first.
_DIAGNOSES: tuple[tuple[str, str, str], ...] = (
    (
        "password authentication failed",
        "authentication failed (wrong user or password)",
        "check PERSONA_PG_USER and PERSONA_PG_PASSWORD(_FILE)",
    ),
    (
        "certificate verify failed",
        "TLS: the server's certificate is not trusted",
        "set PERSONA_PG_SSLROOTCERT to the CA that signed the server",
    ),
    (
        "does not match host name",
        "TLS: the server's certificate does not name this host",
        "connect by a name the certificate lists, or PERSONA_PG_SSLMODE=verify-ca",
    ),
    (
        "no encryption",
        "the server accepts this user only over TLS",
        "set PERSONA_PG_SSLMODE=verify-full and PERSONA_PG_SSLROOTCERT",
    ),
    (
        "server does not support SSL",
        "the server does not offer TLS",
        "use PERSONA_PG_SSLMODE=prefer or enable ssl on the server",
    ),
    (
        "root certificate file",
        "TLS: the CA file cannot be read",
        "check PERSONA_PG_SSLROOTCERT",
    ),
    ("does not exist", "database or role does not exist", "check PERSONA_PG_DATABASE / PG_USER"),
    (
        "Connection refused",
        "nothing listens there",
        "check PERSONA_PG_HOST/PORT or PERSONA_PG_URL; local stack: `make up`",
    ),
)


def explain_postgres_error(text: str) -> tuple[str, str]:
    """(what happened, the fix) for a libpq connection error."""
    for needle, what, fix in _DIAGNOSES:
        if needle.lower() in text.lower():
            return what, fix
    lines = text.strip().splitlines()
    first = lines[0] if lines else "connection failed"
    return first, "is the server up? `persona doctor`; local stack: `make up`"


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


def pending_migrations(settings: Settings) -> list[str]:
    """Versions not yet applied to the configured schema (all of them if it has none)."""
    with connect(settings, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM information_schema.tables"
            " WHERE table_schema = %s AND table_name = 'schema_migrations'",
            (settings.pg_schema,),
        ).fetchone()
        done = (
            {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            if exists
            else set()
        )
    return [version for version, _ in migrations() if version not in done]


def label_counts(settings: Settings) -> tuple[int, int]:
    """(rows, distinct event ids) in persona_labels of the settings' schema: equal means nothing
    duplicated (the demo's summary, the soak's accounting, the benches and the tests ask it)."""
    with connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT event_id) FROM persona_labels"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
