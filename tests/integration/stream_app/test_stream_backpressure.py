"""PostgreSQL unavailable: the worker waits and says so, then writes everything exactly once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from fault_tools import TcpProxy, wait_for
from loop_tools import label_rows
from stream_helpers import (
    Worker,
    committed_offsets,
    make_events,
    metric,
    produce_events,
    read_topic,
)

from personas.model import CentroidModel
from personas.settings import Settings


def test_postgres_outage_is_back_pressure_not_loss(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    proxy = TcpProxy((s.pg_host, s.pg_port))
    proxy.up()
    try:
        worker = workers(
            "--batch-size",
            "100",
            PERSONA_PG_PORT=str(proxy.port),
            PERSONA_STREAM_RETRY_MAX_BACKOFF="1",
        )
        worker.wait_ready()
        first, second = (
            make_events(vendor_model, 500, seed=41),
            make_events(vendor_model, 700, seed=42),
        )
        produce_events(s, first)
        wait_for(lambda: label_rows(s)[0] == 500, 60, "500 rows before the outage")

        proxy.down()
        produce_events(s, second)
        wait_for(
            lambda: "waiting for PostgreSQL" in worker.output(), 30, "the worker to say it waits"
        )
        time.sleep(2)
        assert label_rows(s)[0] == 500  # (read directly, not through the proxy)
        assert worker.alive()  # still running, not crashed

        proxy.up()
        wait_for(lambda: label_rows(s)[0] >= 1200, 60, "all rows after the outage")
        time.sleep(1)
        assert label_rows(s) == (1200, 1200)
        labels = read_topic(s, s.topics.labels, expect=1200, idle=1.0)
        assert {json.loads(m.value())["event_id"] for m in labels} == {
            e["event_id"] for e in first + second
        }
        text = worker.metrics()
        assert metric(text, "persona_stream_retries_total", target="postgres") >= 1
        assert metric(text, "persona_stream_rows_inserted_total") == 1200
    finally:
        proxy.down()


@pytest.mark.parametrize("engine", ["batch", "agent"])
def test_sigterm_during_an_outage_leaves_the_batch_uncommitted(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
    engine: str,
) -> None:
    """Stopping while a batch waits for PostgreSQL: after the grace the worker exits, the batch
    is neither written nor committed, and the next worker writes it exactly once."""
    s = isolated_settings
    proxy = TcpProxy((s.pg_host, s.pg_port))
    proxy.up()
    try:
        worker = workers(
            "--engine",
            engine,
            "--batch-size",
            "100",
            PERSONA_PG_PORT=str(proxy.port),
            PERSONA_STREAM_RETRY_MAX_BACKOFF="1",
            PERSONA_STREAM_SHUTDOWN_GRACE="2",
        )
        group = worker.wait_ready()["app_id"]
        first, second = (
            make_events(vendor_model, 300, seed=43),
            make_events(vendor_model, 300, seed=44),
        )
        produce_events(s, first)
        wait_for(lambda: label_rows(s)[0] == 300, 60, "300 rows before the outage")
        wait_for(lambda: committed_offsets(s, group) == 300, 20, "their offsets")

        proxy.down()
        produce_events(s, second)
        wait_for(
            lambda: "waiting for PostgreSQL" in worker.output(), 30, "the worker to say it waits"
        )
        started = time.monotonic()
        assert worker.stop() == 0
        assert time.monotonic() - started < 20  # grace 2 s, not the outage's length
        assert "left uncommitted" in worker.output()
        assert label_rows(s) == (300, 300)
        assert committed_offsets(s, group) == 300

        proxy.up()
        successor = workers("--engine", engine, PERSONA_PG_PORT=str(proxy.port), state="successor")
        successor.wait_ready()
        wait_for(lambda: label_rows(s)[0] >= 600, 60, "all rows after the restart")
        time.sleep(1)
        assert label_rows(s) == (600, 600)
    finally:
        proxy.down()
