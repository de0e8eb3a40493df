"""The offset checkpoint: processed, held, committable, due; committing through a consumer."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from personas.checkpoint import Checkpoint, LowestOffsets, Source

A: Source = ("labels", 0)
B: Source = ("labels", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class CommitResult:
    """What a synchronous commit returns per partition (a TopicPartition's error is read-only)."""

    topic: str
    partition: int
    offset: int
    error: KafkaError | None = None


@dataclass
class FakeConsumer:
    """Records commits; can fail the call or one partition, like confluent-kafka does."""

    calls: list[tuple[dict[Source, int], bool]] = field(default_factory=list)
    raise_error: bool = False
    failed_partition: Source | None = None

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any:
        if self.raise_error:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        self.calls.append(({(tp.topic, tp.partition): tp.offset for tp in offsets}, asynchronous))
        if asynchronous:
            return None
        failed = KafkaError(KafkaError._TRANSPORT)
        return [
            CommitResult(
                tp.topic,
                tp.partition,
                tp.offset,
                failed if (tp.topic, tp.partition) == self.failed_partition else None,
            )
            for tp in offsets
        ]


def test_lowest_offsets_keep_the_smallest_per_partition() -> None:
    lowest = LowestOffsets()
    lowest.add(A, 7)
    lowest.add(A, 9)
    lowest.add(B, 3)
    lowest.add(A, 5)
    assert lowest == {A: 5, B: 3}
    assert LowestOffsets.of([{A: 4}, {B: 8}, {A: 6, B: 2}]) == {A: 4, B: 2}
    assert LowestOffsets.of([]) == {}


def test_processed_records_are_committable_up_to_the_position() -> None:
    cp = Checkpoint(1.0)
    assert cp.committable() == {} and cp.position(A) is None
    for offset in range(5):
        cp.processed(A, offset)
    cp.processed_up_to({B: 12})
    assert cp.position(A) == 5
    assert cp.committable() == {A: 5, B: 12}
    assert cp.committable(only={B}) == {B: 12}


def test_a_held_record_stops_the_commit_until_released() -> None:
    cp = Checkpoint(1.0)
    for offset in range(10):
        cp.processed(A, offset)
    cp.hold("w1", {A: 3})
    cp.hold("w2", {A: 6})
    assert cp.committable() == {A: 3}
    cp.release("w1")
    assert cp.committable() == {A: 6}
    cp.release("w2")
    cp.release("never held")
    assert cp.committable() == {A: 10}


def test_a_hold_under_the_same_key_keeps_its_lowest_offset() -> None:
    cp = Checkpoint(1.0)
    cp.processed(A, 9)
    cp.hold("w", {A: 6})
    cp.hold("w", {A: 4})
    cp.hold("w", {A: 8})
    assert cp.committable() == {A: 4} and cp.holding == 1


def test_a_holder_is_asked_at_commit_time() -> None:
    open_windows: dict[Source, int] = {A: 2}
    cp = Checkpoint(1.0, holders=[lambda: open_windows])
    cp.processed(A, 5)
    cp.processed(B, 5)
    assert cp.committable() == {A: 2, B: 6}
    open_windows.clear()
    assert cp.committable() == {A: 6, B: 6}


def test_the_commit_never_goes_back_after_a_redelivery() -> None:
    consumer = FakeConsumer()
    cp = Checkpoint(0.0)
    for offset in range(5):
        cp.processed(A, offset)
    assert cp.commit(consumer) == {A: 5}
    cp.hold("re-read", {A: 2})  # a record below the commit, re-delivered: it was durable
    assert cp.committable() == {A: 5}
    assert cp.uncommitted() == {}


def test_due_at_once_then_after_the_interval_since_the_last_attempt() -> None:
    clock = Clock()
    cp = Checkpoint(2.0, clock=clock)
    assert cp.due()  # the first durable records are committed without waiting
    cp.commit(FakeConsumer())  # nothing to send: the commit stays due, no interval starts
    assert cp.due()
    cp.processed(A, 0)
    cp.commit(FakeConsumer())
    assert not cp.due()
    cp.commit(FakeConsumer())  # an empty attempt within the interval changes nothing
    clock.now += 2.0
    assert cp.due()
    cp.processed(A, 1)
    cp.commit(FakeConsumer(raise_error=True))  # a failed commit too: asked again next interval
    assert not cp.due()
    clock.now += 1.0
    cp.mark_committed({A: 2})
    clock.now += 1.5
    assert not cp.due()


def test_a_quiet_spell_does_not_delay_the_next_durable_batch() -> None:
    """Polls with nothing new attempt commits; none of them may start an interval, or the first
    batch after the spell waits up to ``commit_interval_s`` (found by review)."""
    clock = Clock()
    cp = Checkpoint(5.0, clock=clock)
    consumer = FakeConsumer()
    for _ in range(3):
        if cp.due():
            cp.commit(consumer)
        clock.now += 1.0
    cp.processed(A, 0)
    assert cp.due()
    assert cp.commit(consumer) == {A: 1}


def test_a_sync_commit_sends_again_what_an_async_one_has_in_flight() -> None:
    """The revoke/close commit must not trust an async commit that has not been confirmed: if it
    fails after the partition is handed over, the next owner re-reads durable records."""
    consumer = FakeConsumer()
    cp = Checkpoint(0.0)
    cp.processed(A, 3)
    cp.processed(B, 3)
    assert cp.commit(consumer, asynchronous=True) == {A: 4, B: 4}
    cp.on_commit(None, [TopicPartition(*B, 4)])  # B confirmed, A still in flight
    assert cp.commit(consumer, asynchronous=True) == {}  # not re-sent every interval
    assert cp.commit(consumer, only={A, B}) == {A: 4}
    assert cp.commit(consumer) == {}  # confirmed by the sync commit
    assert consumer.calls[-1] == ({A: 4}, False)


def test_commit_sends_only_what_changed() -> None:
    consumer = FakeConsumer()
    cp = Checkpoint(0.0)
    cp.processed(A, 0)
    cp.processed(B, 0)
    assert cp.commit(consumer) == {A: 1, B: 1}
    cp.processed(B, 1)
    assert cp.commit(consumer, asynchronous=True) == {B: 2}
    cp.on_commit(None, [TopicPartition(*B, 2)])
    assert cp.commit(consumer) == {}
    assert consumer.calls == [({A: 1, B: 1}, False), ({B: 2}, True)]
    assert cp.committed == {A: 1, B: 2}


def test_commit_only_the_partitions_asked_for() -> None:
    consumer = FakeConsumer()
    cp = Checkpoint(0.0)
    cp.processed(A, 3)
    cp.processed(B, 4)
    assert cp.commit(consumer, only={B}) == {B: 5}
    assert cp.uncommitted() == {A: 4}


def test_a_failed_commit_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    consumer = FakeConsumer(raise_error=True)
    cp = Checkpoint(0.0)
    cp.processed(A, 3)
    with caplog.at_level(logging.WARNING, logger="personas.checkpoint"):
        assert cp.commit(consumer) == {}
    assert "offset commit failed" in caplog.text
    consumer.raise_error = False
    assert cp.commit(consumer) == {A: 4}


def test_a_partition_that_failed_in_a_sync_commit_is_not_recorded() -> None:
    consumer = FakeConsumer(failed_partition=B)
    cp = Checkpoint(0.0)
    cp.processed(A, 3)
    cp.processed(B, 3)
    assert cp.commit(consumer) == {A: 4}
    assert cp.uncommitted() == {B: 4}


def test_a_failed_async_commit_is_retried_unless_replaced() -> None:
    consumer = FakeConsumer()
    cp = Checkpoint(0.0)
    cp.processed(A, 3)
    cp.processed(B, 3)
    cp.commit(consumer, asynchronous=True)
    cp.processed(B, 4)
    cp.commit(consumer, asynchronous=True)  # B: 5 replaces B: 4
    error = KafkaError(KafkaError._TRANSPORT)
    cp.on_commit(error, [TopicPartition(*A, 4), TopicPartition(*B, 4)])
    assert cp.uncommitted() == {A: 4}
    cp.on_commit(None, [TopicPartition(*B, 5)])  # success: nothing changes
    assert cp.committed == {B: 5}


def test_forget_drops_a_revoked_partition() -> None:
    cp = Checkpoint(0.0)
    cp.processed(A, 3)
    cp.processed(B, 3)
    cp.hold("w", {A: 1, B: 2})
    cp.commit(FakeConsumer())
    cp.forget([A])
    assert cp.position(A) is None and A not in cp.committed
    assert cp.committable() == {B: 2}
    cp.processed(A, 0)  # assigned again: reading resumes at the group's committed offset
    assert cp.committable() == {A: 1, B: 2}


# ---------------------------------------------------------------- properties

#: ("read", partition, window) | ("again", partition, window) | ("release", window) | ("commit",)
Op = tuple[Any, ...]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(0, 2), st.integers(0, 4)),
        st.tuples(st.just("again"), st.integers(0, 2), st.integers(0, 4)),
        st.tuples(st.just("release"), st.integers(0, 4)),
        st.tuples(st.just("commit")),
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_the_commit_never_passes_a_held_record_and_never_goes_back(steps: list[Op]) -> None:
    """Records are read in order per partition and held by a random window until it is released
    (published); commits happen at random; a record already committed may be delivered again
    (a rebalance) and held anew. Whatever the interleaving, no committed offset is past a record
    whose window is not released, no committed offset moves back, and once every window is
    released everything read is committed."""
    consumer = FakeConsumer()
    cp = Checkpoint(0.0)
    read: dict[int, int] = {}
    unreleased: dict[int, list[tuple[Source, int]]] = {}
    committed: dict[Source, int] = {}
    seen = 0
    for step in steps:
        if step[0] == "read":
            _, partition, window = step
            source = ("t", partition)
            offset = read.get(partition, 0)
            read[partition] = offset + 1
            cp.processed(source, offset)
            cp.hold(window, {source: offset})
            unreleased.setdefault(window, []).append((source, offset))
        elif step[0] == "again":
            _, partition, window = step
            source = ("t", partition)
            if committed.get(source, 0) > 0:  # durable once, so no longer "held" when re-read
                offset = committed[source] - 1
                cp.processed(source, offset)
                cp.hold(window, {source: offset})
        elif step[0] == "release":
            cp.release(step[1])
            unreleased.pop(step[1], None)
        else:
            cp.commit(consumer)
        for calls, _ in consumer.calls[seen:]:
            for source, offset in calls.items():
                assert offset >= committed.get(source, 0), "the commit went back"
                committed[source] = offset
        seen = len(consumer.calls)
        for records in unreleased.values():
            for source, offset in records:
                assert committed.get(source, 0) <= offset, "committed past a held record"
    for window in range(5):
        cp.release(window)
    cp.commit(consumer)
    assert dict(cp.committed) == {("t", p): n for p, n in read.items()}


@given(st.lists(st.tuples(st.sampled_from([A, B]), st.integers(0, 1000)), max_size=50))
def test_lowest_offsets_match_min(pairs: list[tuple[Source, int]]) -> None:
    lowest = LowestOffsets()
    for source, offset in pairs:
        lowest.add(source, offset)
    expected = {s: min(o for t, o in pairs if t == s) for s in {s for s, _ in pairs}}
    assert lowest == expected
