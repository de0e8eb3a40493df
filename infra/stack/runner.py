"""Bring the stack up, down, or report on it, in dependency order."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from infra.stack.kafka import KafkaService
from infra.stack.layout import SKIPPED, Layout, ServiceStatus
from infra.stack.mlflow_server import MlflowService
from infra.stack.postgres import PostgresService
from infra.stack.prometheus import PrometheusService
from personas import db
from personas.errors import StackError
from personas.kafka import create_topics
from personas.settings import Settings

__all__ = ["PROFILES", "down", "services", "status", "up"]

#: "default": one plaintext broker, PostgreSQL and MLflow (`make up`). "cluster": three SASL_SSL
#: nodes with ACLs, TLS-only PostgreSQL, authenticated MLflow (infra/stack/cluster.py).
PROFILES = ("default", "cluster")


class Service(Protocol):
    name: str

    @property
    def address(self) -> str: ...

    @property
    def log(self) -> Path: ...

    def start(self) -> str: ...

    def stop(self) -> str: ...

    def status(self) -> ServiceStatus: ...


def services(settings: Settings) -> list[Service]:
    layout = Layout.from_settings(settings)
    return [
        PostgresService(settings, layout),
        KafkaService(settings, layout),
        MlflowService(settings, layout),
        PrometheusService(settings, layout),
    ]


def up(settings: Settings, say: Callable[[str], None] = print, profile: str = "default") -> None:
    """Start what is not running (idempotent), then create topics and apply migrations."""
    if profile == "cluster":
        from infra.stack import cluster

        cluster.up(settings, say)
        return
    started: list[Service] = []
    for service in services(settings):
        _still_answering(started, settings)  # MLflow would wait minutes for a dead PostgreSQL
        t0 = time.monotonic()
        say(f"{service.name:<10} {service.address} … ")
        outcome = service.start()
        say(f"{service.name:<10} {outcome} ({time.monotonic() - t0:.1f} s)")
        if not outcome.startswith(SKIPPED):
            started.append(service)
    _still_answering(started, settings)
    # The local stack's own topics: configs an upgrade changed are set (never partitions).
    created, _ = create_topics(settings, fix_configs=True)
    say(f"topics    {len(created)} created" + (f": {', '.join(created)}" if created else ""))
    applied = db.apply_migrations(settings)
    say(
        f"schema    {settings.pg_schema}: "
        + (f"applied {', '.join(applied)}" if applied else "up to date")
    )


def _still_answering(started: list[Service], settings: Settings) -> None:
    for service in started:
        if not service.status().answers:
            raise StackError(
                f"{service.name} at {service.address} stopped answering after it started; "
                f"see {service.log}"
            )


def down(settings: Settings, say: Callable[[str], None] = print, profile: str = "default") -> None:
    """Stop exactly what `up` started (by PID file), in reverse order."""
    if profile == "cluster":
        from infra.stack import cluster

        cluster.down(settings, say)
        return
    for service in reversed(services(settings)):
        say(f"{service.name:<10} {service.stop()}")


def status(settings: Settings, profile: str = "default") -> list[ServiceStatus]:
    if profile == "cluster":
        from infra.stack import cluster

        return cluster.status(settings)
    return [service.status() for service in services(settings)]
