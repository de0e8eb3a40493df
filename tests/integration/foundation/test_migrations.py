"""Migrations apply to a fresh schema, create the contract tables, and re-apply as a no-op."""

from __future__ import annotations

import uuid

from personas import db
from personas.settings import Settings


def test_migrations_apply_once_and_reapply_as_noop(stack_settings: Settings):
    settings = stack_settings.model_copy(update={"pg_schema": f"m_{uuid.uuid4().hex[:10]}"})
    try:
        first = db.apply_migrations(settings)
        assert first == [version for version, _ in db.migrations()]
        assert first[0] == "001_core"
        assert db.apply_migrations(settings) == []
        with db.connect(settings) as conn:
            tables = {
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                    (settings.pg_schema,),
                )
            }
            assert {"persona_labels", "drift_reports", "schema_migrations"} <= tables
            count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
            assert count == (len(first),)
    finally:
        with db.connect(settings, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')


def test_dead_postgres_is_named(stack_settings: Settings):
    import pytest

    from personas.errors import ServiceUnavailable

    dead = stack_settings.model_copy(update={"pg_port": 1})
    with pytest.raises(
        ServiceUnavailable, match=r"PostgreSQL at postgresql://persona@127\.0\.0\.1:1/"
    ):
        db.check_postgres(dead, timeout=1)
