"""personas.kafka.produce_waiting: a full local queue is waited out, nothing else is swallowed."""

from __future__ import annotations

from typing import Any

import pytest

from personas.kafka import produce_waiting


class FullQueueProducer:
    """Raises BufferError until ``poll`` has been called ``room_after`` times."""

    def __init__(self, room_after: int, refuse: Exception | None = None) -> None:
        self.room_after = room_after
        self.refuse = refuse
        self.polls: list[float] = []
        self.produced: list[tuple[Any, ...]] = []

    def produce(self, topic: str, value: Any, key: Any = None, **kwargs: Any) -> None:
        if self.refuse is not None:
            raise self.refuse
        if len(self.polls) < self.room_after:
            raise BufferError("Local: Queue full")
        self.produced.append((topic, value, key, kwargs))

    def poll(self, timeout: float) -> int:
        self.polls.append(timeout)
        return 0


def test_waits_until_room_then_produces_once_with_every_argument() -> None:
    producer = FullQueueProducer(room_after=3)
    produce_waiting(producer, "t", b"v", b"k", wait_s=0.01, timestamp=7, headers=[("h", b"1")])
    assert producer.polls == [0.01, 0.01, 0.01]
    assert producer.produced == [("t", b"v", b"k", {"timestamp": 7, "headers": [("h", b"1")]})]


def test_no_poll_when_there_is_room() -> None:
    producer = FullQueueProducer(room_after=0)
    produce_waiting(producer, "t", b"v")
    assert producer.polls == []
    assert len(producer.produced) == 1


def test_a_local_refusal_is_the_callers_to_handle() -> None:
    producer = FullQueueProducer(room_after=0, refuse=ValueError("message too large"))
    with pytest.raises(ValueError, match="too large"):
        produce_waiting(producer, "t", b"v")
    assert producer.polls == []
