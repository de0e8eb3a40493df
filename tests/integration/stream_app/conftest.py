"""Stream worker subprocesses for the integration tests, stopped and cleaned up after each test."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stream_helpers import Worker, start_worker

from personas.kafka import admin_config
from personas.settings import Settings


@pytest.fixture
def workers(isolated_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start `persona stream` workers of this test's app id; all are stopped afterwards."""
    started: list[Worker] = []

    def start(*args: str, state: str = "state", **env: str) -> Worker:
        env.setdefault("PERSONA_STREAM_REGISTRY_POLL_SECONDS", "300")
        worker = start_worker(isolated_settings, tmp_path / state, *args, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
    # Faust's own topics of this test's app id (the assignor's leader topic).
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(admin_config(isolated_settings))
    prefix = f"persona-stream-{isolated_settings.topics.responses}"
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    if mine:
        for future in admin.delete_topics(mine, operation_timeout=10).values():
            with contextlib.suppress(Exception):
                future.result(timeout=15)
