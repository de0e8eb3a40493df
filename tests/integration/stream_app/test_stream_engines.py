"""Switching engines: a batch worker waits (and says why) while agent workers hold the group,
then carries on from the group's committed offsets."""

from __future__ import annotations

from collections.abc import Callable

from fault_tools import wait_for
from loop_tools import label_rows
from stream_helpers import Worker, make_events, metric, produce_events

from personas.model import CentroidModel
from personas.settings import Settings

HELD = "is held by workers that speak another group protocol"


def test_batch_worker_takes_over_from_agent_workers_of_the_same_group(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    agent = workers("--engine", "agent")
    agent.wait_ready()
    first, second = make_events(vendor_model, 500, seed=31), make_events(vendor_model, 500, seed=32)
    produce_events(s, first)
    wait_for(lambda: label_rows(s)[0] == 500, 60, "the agent's 500 rows")

    batch = workers("--engine", "batch", state="batch")
    wait_for(lambda: HELD in batch.output(), 30, "the batch worker to say why it waits")
    assert batch.health() is None  # 503: not ready, no partitions
    assert batch.output().count(HELD) == 1  # said once, not every retry

    assert agent.stop() == 0
    assert batch.wait_ready(60)["partitions"] == [0, 1, 2, 3]
    produce_events(s, second)
    wait_for(lambda: label_rows(s)[0] == 1000, 60, "all 1000 rows")
    assert label_rows(s) == (1000, 1000)
    text = batch.metrics()
    assert metric(text, "persona_stream_rows_inserted_total") == 500
    assert metric(text, "persona_stream_rows_duplicate_total") == 0  # it began where they stopped
