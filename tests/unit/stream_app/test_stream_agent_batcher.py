"""Batch assembly: one batch written at a time, coalescing while busy, acks only when durable."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from personas.errors import Stopping
from stream_app.engines.agent_batcher import Batcher
from stream_app.records import RawRecord


def _records(start: int, n: int) -> list[RawRecord]:
    return [RawRecord(None, b"{}", "t", 0, start + i) for i in range(n)]


class Writer:
    """Stands in for the writer thread: the test decides when each batch becomes durable."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[RawRecord], asyncio.Future[Any]]] = []
        self.durable: list[list[int]] = []
        self.failures: list[BaseException] = []

    def run(self, records: list[RawRecord]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.calls.append((records, future))
        return future

    def on_durable(self, events: list[Any], records: list[RawRecord]) -> None:
        assert events == [r.offset for r in records]
        self.durable.append(events)

    def finish(self, index: int, error: BaseException | None = None) -> None:
        future = self.calls[index][1]
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _batcher(writer: Writer, max_batch: int = 3, max_pending: int = 6) -> Batcher:
    return Batcher(
        writer.run,
        writer.on_durable,
        writer.failures.append,
        max_batch=max_batch,
        max_pending=max_pending,
    )


def _add(batcher: Batcher, start: int, n: int) -> None:
    records = _records(start, n)
    batcher.add([r.offset for r in records], records)


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def test_events_coalesce_while_a_batch_is_written() -> None:
    async def scenario() -> None:
        writer = Writer()
        batcher = _batcher(writer, max_batch=3, max_pending=100)
        _add(batcher, 0, 2)  # idle: submitted at once
        _add(batcher, 2, 1)  # busy: waits
        _add(batcher, 3, 3)
        assert batcher.submitted == [2] and batcher.pending == 4
        assert writer.durable == []  # nothing acked before it is durable
        writer.finish(0)
        await _settle()
        assert writer.durable == [[0, 1]]
        assert batcher.submitted == [2, 3]  # capped at max_batch, rest still pending
        writer.finish(1)
        await _settle()
        writer.finish(2)
        await _settle()
        assert writer.durable == [[0, 1], [2, 3, 4], [5]]
        assert batcher.pending == 0 and not batcher.busy

    asyncio.run(scenario())


def test_back_pressure_when_too_much_waits() -> None:
    async def scenario() -> None:
        writer = Writer()
        batcher = _batcher(writer, max_batch=3, max_pending=4)
        _add(batcher, 0, 3)
        _add(batcher, 3, 4)
        waiter = asyncio.ensure_future(batcher.wait_capacity())
        await _settle()
        assert not waiter.done()
        writer.finish(0)
        await _settle()
        assert waiter.done() and batcher.pending == 1

    asyncio.run(scenario())


def test_a_failed_batch_is_never_acked_and_stops_submitting() -> None:
    async def scenario() -> None:
        writer = Writer()
        batcher = _batcher(writer)
        _add(batcher, 0, 2)
        _add(batcher, 2, 2)
        writer.finish(0, RuntimeError("bug"))
        await _settle()
        assert writer.durable == []
        assert [type(e) for e in writer.failures] == [RuntimeError]
        assert batcher.submitted == [2] and batcher.pending == 2
        _add(batcher, 4, 1)
        assert batcher.submitted == [2]
        await batcher.wait_capacity()  # returns at once: the agent then stops

    asyncio.run(scenario())


def test_drain_waits_for_the_batch_being_written() -> None:
    async def scenario() -> None:
        writer = Writer()
        batcher = _batcher(writer)
        _add(batcher, 0, 2)
        _add(batcher, 2, 1)
        drained = asyncio.ensure_future(batcher.drain(5))
        await _settle()
        writer.finish(0)
        assert await drained is True
        assert writer.durable == [[0, 1]]
        assert batcher.submitted == [2]  # the pending event is left uncommitted

    asyncio.run(scenario())


@pytest.mark.parametrize("error", [None, Stopping("stop")])
def test_drain_gives_up_after_grace(error: BaseException | None) -> None:
    async def scenario() -> None:
        writer = Writer()
        batcher = _batcher(writer)
        _add(batcher, 0, 2)
        if error is not None:
            writer.finish(0, error)
            await _settle()
        assert await batcher.drain(0.05) is False
        assert writer.durable == []

    asyncio.run(scenario())


@pytest.mark.parametrize("state", ["writing", "taken", "failed", "idle"])
def test_unfinished_says_what_would_be_left_uncommitted(state: str) -> None:
    """A batch being written (or failed) vs events only taken: both left uncommitted, said
    differently (the runtime says it once, test_stream_runtime.py); nothing when all is acked."""

    async def scenario() -> str | None:
        writer = Writer()
        batcher = _batcher(writer)
        if state == "taken":
            batcher.closed = True  # stopping: events still arrive, nothing new is submitted
        _add(batcher, 0, 2)
        await _settle()
        if state == "failed":
            writer.finish(0, Stopping("stopping"))
        elif state == "idle":
            writer.finish(0)
        await _settle()
        return batcher.unfinished()

    expected = {
        "writing": "in-flight batch not durable",
        "failed": "in-flight batch not durable",
        "taken": "2 events taken but not yet written",
        "idle": None,
    }
    assert asyncio.run(scenario()) == expected[state]
