"""The runtime both engines share: readiness, the lag gauge, failing, and the one shutdown."""

from __future__ import annotations

import asyncio
import logging
import threading
from types import SimpleNamespace
from typing import Any, cast

import pytest

from personas.settings import Settings, TopicNames
from stream_app.metrics import StreamMetrics
from stream_app.records import RawRecord
from stream_app.runtime import READY_LINE, Runtime
from stream_app.settings import StreamSettings


class FakeEngine:
    def __init__(self, durable: bool, left: str | None = "in-flight batch not durable") -> None:
        self.durable, self.left = durable, left
        self.drains: list[float] = []
        self.let_go_calls = 0

    async def drain(self, grace: float) -> bool:
        self.drains.append(grace)
        return self.durable

    async def let_go(self) -> None:
        self.let_go_calls += 1

    def unfinished(self) -> str | None:
        return None if self.durable else self.left


def _holder(version: int, description: str) -> Any:
    model = SimpleNamespace(version=version)
    return SimpleNamespace(
        current=model,
        loaded=SimpleNamespace(model=model, description=description),
        refused_versions=set(),
    )


def _runtime(
    engine: FakeEngine | None = None, *, watcher_ready: bool = True, holder: Any = None
) -> Runtime:
    positioned = threading.Event()
    if watcher_ready:
        positioned.set()
    crashes: list[BaseException] = []
    runtime = Runtime(
        settings=Settings(topics=TopicNames(responses="in", labels="out", dlq="in.dlq")),
        stream=StreamSettings(shutdown_grace=3),
        metrics=StreamMetrics(),
        holder=cast(Any, holder or _holder(4, "registry version 4")),
        processor=cast(Any, None),
        watcher=cast(Any, SimpleNamespace(assigned=positioned)),
        executor=cast(Any, None),
        stop_event=threading.Event(),
        app_id="g",
        crash=crashes.append,
        engine=engine,
    )
    runtime.crashes = crashes  # type: ignore[attr-defined]
    return runtime


def _tp(partition: int) -> Any:
    return SimpleNamespace(topic="in", partition=partition)


def test_ready_once_assigned_and_the_model_follower_is_positioned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    waiting = _runtime(watcher_ready=False)
    with caplog.at_level(logging.INFO, logger="stream_app"):
        waiting.on_assigned([3, 1])
        assert not waiting.ready and READY_LINE not in caplog.text
        runtime = _runtime()
        runtime.on_assigned(iter([3, 1]))
    assert runtime.ready and runtime.health()["partitions"] == [1, 3]
    assert f"{READY_LINE}: group=g partitions=[1, 3] model_version=4" in caplog.text


def test_revoked_partitions_forget_their_offsets() -> None:
    runtime = _runtime()
    runtime.note_done([RawRecord(None, b"", "in", 0, 9), RawRecord(None, b"", "in", 1, 2)])
    runtime.on_assigned([0, 1])
    runtime.on_revoked({("in", 0)})
    assert runtime.checkpoint.committable() == {("in", 1): 3} and runtime.assigned == []


def test_the_agent_engine_forgets_revoked_partitions_so_the_lag_gauge_is_not_stale(
    tmp_path: Any,
) -> None:
    """Faust seeks a partition given back to a worker to the group's committed offset: a position
    kept from before the rebalance would keep its lag gauge low (found by review — the agent
    engine never told the runtime about revocations)."""
    from faust.types import TP

    from stream_app.app import build_app
    from stream_app.engines import agent

    runtime = _runtime()
    app = build_app(runtime.settings, StreamSettings(state_dir=tmp_path))
    agent.attach(app, runtime)
    runtime.note_done([RawRecord(None, b"", "in", 0, 9), RawRecord(None, b"", "in", 1, 2)])

    asyncio.run(app.on_partitions_revoked.send({TP("in", 0), TP("other", 1)}))

    assert runtime.checkpoint.position(("in", 0)) is None
    assert runtime.checkpoint.position(("in", 1)) == 3


@pytest.mark.parametrize(
    "high",
    [
        {0: 110, 1: None, 2: 50},  # Faust's highwater: None when unknown
        {0: 110, 1: -1, 2: 50},  # librdkafka's cached watermark: -1 when unknown
    ],
)
def test_lag_is_high_watermark_minus_next_offset_for_either_consumer(
    high: dict[int, int | None],
) -> None:
    runtime = _runtime()
    # partition 2: nothing durable yet
    runtime.checkpoint.processed_up_to({("in", 0): 100, ("in", 1): 5})
    runtime.update_lag(lambda: [_tp(0), _tp(1), _tp(2)], lambda tp: high[tp.partition])
    gauge = runtime.metrics.consumer_lag
    assert gauge.labels(partition="0")._value.get() == 10
    samples = {s.labels.get("partition") for m in gauge.collect() for s in m.samples}
    assert samples == {"0"}


def test_lag_of_a_consumer_that_is_not_running_is_left_alone() -> None:
    def not_started() -> list[Any]:
        raise RuntimeError("consumer not started")

    def unknown(tp: Any) -> int:
        raise KeyError(tp)

    runtime = _runtime()
    runtime.checkpoint.processed_up_to({("in", 0): 1})
    runtime.update_lag(not_started, unknown)
    runtime.update_lag(lambda: [_tp(0)], unknown)
    assert not next(iter(runtime.metrics.consumer_lag.collect())).samples


def test_fail_stops_the_retry_loops_and_crashes_the_host() -> None:
    runtime = _runtime()
    bug = RuntimeError("bug")
    runtime.fail(bug)
    assert runtime.stop_event.is_set() and runtime.crashes == [bug]  # type: ignore[attr-defined]


def test_a_durable_drain_interrupts_nothing(caplog: pytest.LogCaptureFixture) -> None:
    engine = FakeEngine(durable=True)
    runtime = _runtime(engine)
    with caplog.at_level(logging.INFO, logger="stream_app"):
        asyncio.run(runtime.shutdown())
    assert engine.drains == [3] and engine.let_go_calls == 0
    assert not runtime.stop_event.is_set()
    assert "finishing the in-flight batch (grace 3s)" in caplog.text
    assert "left uncommitted" not in caplog.text


def test_past_the_grace_the_batch_is_interrupted_and_left_uncommitted_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = FakeEngine(durable=False)
    runtime = _runtime(engine)

    async def stop_twice() -> None:  # the host's shutdown, then the agent's cancellation
        await runtime.shutdown()
        await runtime.shutdown()

    with caplog.at_level(logging.INFO, logger="stream_app"):
        asyncio.run(stop_twice())
        runtime.say_uncommitted()  # the host's last word (Runtime.close) says nothing new
    assert runtime.stop_event.is_set() and engine.drains == [3] and engine.let_go_calls == 1
    said = [r.getMessage() for r in caplog.records if "left uncommitted" in r.getMessage()]
    assert said == [
        "in-flight batch not durable at shutdown: left uncommitted (Kafka delivers it again)"
    ]


def test_nothing_left_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    for runtime in (_runtime(), _runtime(FakeEngine(durable=False, left=None))):
        runtime.say_uncommitted()
    assert "left uncommitted" not in caplog.text


def test_health_names_the_model_in_use_after_a_swap() -> None:
    """/health used to keep the start-up model's source for the worker's life."""
    holder = _holder(0, "vendor catalogue (bootstrap)")
    runtime = _runtime(holder=holder)
    assert runtime.health()["model_source"] == "vendor catalogue (bootstrap)"
    swapped = _holder(2, "registry version 2 (champion)")
    holder.current, holder.loaded = swapped.current, swapped.loaded
    assert (runtime.health()["model_version"], runtime.health()["model_source"]) == (
        2,
        "registry version 2 (champion)",
    )
