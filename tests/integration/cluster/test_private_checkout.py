"""A checkout in a private folder (mode 0700, like a home directory) still runs the stack when
`make up` runs as root: PostgreSQL, which then runs as the `postgres` user, keeps its data *and its
log* where that user can write, and the stack names the real log."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.stack.layout import Layout
from infra.stack.postgres import PostgresService
from personas.settings import Settings


def _spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_postgres() -> Iterator[PostgresService]:
    private = Path(tempfile.mkdtemp(prefix="persona-private-"))
    os.chmod(private, 0o700)
    settings = Settings(
        _env_file=None,
        stack_dir=private / "checkout" / ".stack",
        cache_dir=Settings().cache_dir.resolve(),  # the real jar cache: nothing is fetched again
        pg_port=_spare_port(),
    )
    service = PostgresService(settings, Layout.from_settings(settings))
    try:
        yield service
    finally:
        try:
            service.stop()
        finally:
            if service.relocated:
                shutil.rmtree(service.home.parent, ignore_errors=True)
            shutil.rmtree(private, ignore_errors=True)


def test_postgres_runs_from_a_private_checkout(private_postgres: PostgresService) -> None:
    service = private_postgres
    assert service.start() == "started"
    assert service.answers()
    status = service.status()
    assert status.answers and status.pid is not None
    assert service.log.stat().st_size > 0, "PostgreSQL wrote no log"
    assert str(service.log) in status.detail, "status must name the log PostgreSQL writes"
    if os.geteuid() == 0:
        # The `postgres` user cannot enter the private folder: data and log live outside it, and
        # the stack's own logs folder leads to the real log.
        assert service.relocated
        assert not service.log.is_relative_to(service.layout.root.parent.parent)
        link = service.layout.log_file("postgres")
        assert link.resolve() == service.log.resolve()
    assert service.start() == "already running"
