"""SIGKILL mid-stream loses nothing and duplicates no row: offsets follow durable outputs."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from fault_tools import wait_for
from loop_tools import label_rows
from stream_helpers import (
    Worker,
    committed_offsets,
    make_events,
    metric,
    produce_events,
    read_topic,
)

from personas import db
from personas.model import CentroidModel
from personas.settings import Settings


def test_sigkill_while_postgres_blocks_commits_nothing_unwritten(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    """While the sink is blocked, the worker consumes but commits no offset past durable rows."""
    s = isolated_settings
    first, second = make_events(vendor_model, 1000, seed=1), make_events(vendor_model, 2000, seed=2)
    worker = workers("--batch-size", "200")
    state = worker.wait_ready()
    produce_events(s, first)
    wait_for(lambda: label_rows(s)[0] == 1000, 60, "the first 1000 rows")
    group = state["app_id"]
    wait_for(lambda: committed_offsets(s, group) == 1000, 20, "offsets of the first 1000 events")

    with db.connect(s) as blocker:  # holds an exclusive lock: the worker's insert waits
        blocker.execute("LOCK TABLE persona_labels IN ACCESS EXCLUSIVE MODE")
        produce_events(s, second)
        time.sleep(4)  # > 3 commit intervals; the worker has fetched and is blocked mid-batch
        assert committed_offsets(s, group) == 1000
        worker.kill()
        blocker.rollback()

    assert label_rows(s) == (1000, 1000)
    restarted = workers("--batch-size", "200")
    restarted.wait_ready()
    wait_for(lambda: label_rows(s)[0] >= 3000, 60, "all 3000 rows after restart")
    time.sleep(1.5)
    assert label_rows(s) == (3000, 3000)
    # Labels are complete (PostgreSQL rows are written only with acknowledged labels); the killed
    # batch may have put duplicates there, so read past the first 3000 messages.
    labels = read_topic(s, s.topics.labels, expect=3000, idle=2.0)
    ids = {json.loads(m.value())["event_id"] for m in labels}
    assert ids == {e["event_id"] for e in first + second}


def _trickle(settings: Settings, events: list[dict[str, object]]) -> threading.Thread:
    """Produce the events 250 at a time, 10 times a second, from a thread."""

    def run() -> None:
        for start in range(0, len(events), 250):
            produce_events(settings, events[start : start + 250])
            time.sleep(0.1)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("engine", ["batch", "agent"])
def test_sigkill_at_random_points_under_load_loses_nothing(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
    engine: str,
) -> None:
    """Events trickle in while the worker is killed twice and restarted: each row exactly once."""
    s = isolated_settings
    events = make_events(vendor_model, 5000, seed=3)
    args = ("--engine", engine, "--batch-size", "100", "--batch-timeout", "0.01")
    worker = workers(*args)
    worker.wait_ready()
    producer = _trickle(s, events)
    for _ in range(2):
        wait_for(lambda: label_rows(s)[0] > 0, 60, "some rows")
        time.sleep(0.7)
        worker.kill()
        worker = workers(*args)
        worker.wait_ready()
    producer.join()
    wait_for(lambda: label_rows(s)[0] >= len(events), 90, "all rows after two kills")
    time.sleep(1.5)
    assert label_rows(s) == (len(events), len(events))
    labels = read_topic(s, s.topics.labels, expect=len(events), idle=2.0)
    assert {json.loads(m.value())["event_id"] for m in labels} == {e["event_id"] for e in events}


def test_sigterm_mid_stream_commits_exactly_what_is_durable(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    """A graceful stop finishes the batch in hand and commits it: a successor repeats nothing."""
    s = isolated_settings
    events = make_events(vendor_model, 5000, seed=4)
    args = ("--batch-size", "100", "--batch-timeout", "0.01")
    worker = workers(*args)
    group = worker.wait_ready()["app_id"]
    producer = _trickle(s, events)
    wait_for(lambda: label_rows(s)[0] > 500, 60, "some rows")
    assert worker.stop() == 0
    output = worker.output()
    assert "finishing the in-flight batch" in output and "left uncommitted" not in output
    rows, distinct = label_rows(s)
    assert rows == distinct and 0 < rows <= len(events)  # usually mid-stream; never more
    assert committed_offsets(s, group) == rows  # every durable event committed, nothing beyond

    producer.join()
    successor = workers(*args)
    successor.wait_ready()
    wait_for(lambda: label_rows(s)[0] >= len(events), 90, "all rows after the restart")
    time.sleep(1.0)
    assert label_rows(s) == (len(events), len(events))
    text = successor.metrics()
    assert metric(text, "persona_stream_rows_inserted_total") == len(events) - rows
    assert metric(text, "persona_stream_rows_duplicate_total") == 0
