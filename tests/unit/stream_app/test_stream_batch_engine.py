"""BatchIngest (the batch engine's loop) against a scripted consumer: offsets follow durability.

It runs with a real ``Runtime`` (readiness, offsets, failing are the runtime's), its pipeline
and consumer scripted."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any, cast

import pytest

from personas.errors import Stopping
from personas.settings import Settings, TopicNames
from stream_app.engines.batch import BatchIngest
from stream_app.metrics import StreamMetrics
from stream_app.records import RawRecord
from stream_app.runtime import Runtime
from stream_app.settings import StreamSettings


class Err:
    def __init__(self, fatal: bool, code: int = -195) -> None:  # -195: _TRANSPORT
        self._fatal, self._code = fatal, code

    def fatal(self) -> bool:
        return self._fatal

    def code(self) -> int:
        return self._code

    def __str__(self) -> str:
        return "fatal broker error" if self._fatal else "transient broker error"


class Msg:
    def __init__(
        self, partition: int, offset: int, error: Err | None = None, stamped: bool = True
    ) -> None:
        self._partition, self._offset, self._error = partition, offset, error
        self._stamped = stamped  # False: TIMESTAMP_NOT_AVAILABLE

    def error(self) -> Err | None:
        return self._error

    def key(self) -> bytes:
        return b"k%d-%d" % (self._partition, self._offset)

    def value(self) -> bytes:
        return b'{"at":%d}' % self._offset

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000 + self._offset) if self._stamped else (0, -1)


class ScriptedConsumer:
    """Hands out the scripted batches, then asks the loop to stop; records commits."""

    def __init__(self, batches: list[list[Msg]], ingest: Any = None, revoke_after: int = -1):
        self.batches = list(batches)
        self.ingest = ingest
        self.revoke_after = revoke_after
        self.commits: list[tuple[dict[tuple[str, int], int], bool]] = []
        self.closed = False
        self.callbacks: dict[str, Any] = {}
        self.calls = 0
        self.revoke_on_close = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks
        callbacks["on_assign"](self, [SimpleNamespace(topic="in", partition=p) for p in (0, 1)])

    def consume(self, n: int, timeout: float) -> list[Msg]:
        self.calls += 1
        if self.calls - 1 == self.revoke_after:
            self.callbacks["on_revoke"](self, [SimpleNamespace(topic="in", partition=0)])
        if not self.batches:
            self.ingest.request_stop()
            return []
        return self.batches.pop(0)

    def commit(self, *, offsets: list[Any], asynchronous: bool) -> None:
        committed = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        durable = self.ingest.runtime.processor.durable
        for source, offset in committed.items():  # never past what make_durable returned
            assert offset <= durable.get(source, 0), (committed, durable)
        self.commits.append((committed, asynchronous))

    def assignment(self) -> list[Any]:
        return []

    def close(self) -> None:
        # as librdkafka does: leaving the group revokes what is assigned, inside close()
        if self.revoke_on_close:
            self.callbacks["on_revoke"](
                self, [SimpleNamespace(topic="in", partition=p) for p in (0, 1)]
            )
        self.closed = True


class RecordingProcessor:
    """The pipeline's steps: ``prepare`` on the consumer's thread, ``commit_rows`` and ``publish``
    on the two writers'; records per partition the next offset that is durable (what may be
    committed). ``fail_on``: the index of the batch whose ``commit_rows`` raises ``error``."""

    def __init__(self, fail_on: int = -1, error: BaseException | None = None) -> None:
        self.batches: list[list[RawRecord]] = []
        self.prepared: list[list[RawRecord]] = []
        self.committed: list[list[RawRecord]] = []  # rows committed, labels not yet published
        self.rows_calls = 0
        self.fail_on, self.error = fail_on, error
        self.durable: dict[tuple[str, int], int] = {}
        self.consumer: ScriptedConsumer | None = None

    def prepare(self, records: list[RawRecord]) -> list[RawRecord]:
        self.prepared.append(records)
        return records

    def commit_rows(self, records: list[RawRecord]) -> int:
        assert self.consumer is not None
        assert threading.current_thread().name.startswith("batch-write-rows")
        self.rows_calls += 1
        if self.rows_calls - 1 == self.fail_on:
            assert self.error is not None
            raise self.error
        self.committed.append(records)
        return len(records)

    def publish(self, records: list[RawRecord], committed: int) -> None:
        assert threading.current_thread().name.startswith("batch-write-labels")
        assert records is self.committed.pop(0) and committed == len(records)  # in order
        self.batches.append(records)
        for record in records:
            source = (record.topic, record.partition)
            self.durable[source] = max(self.durable.get(source, 0), record.offset + 1)


def _run(
    batches: list[list[Msg]],
    processor: RecordingProcessor,
    revoke_after: int = -1,
    commit_interval: float = 0.0001,
    revoke_on_close: bool = False,
) -> tuple[BatchIngest, ScriptedConsumer, Runtime, list[BaseException]]:
    fatal: list[BaseException] = []
    runtime = Runtime(
        settings=Settings(topics=TopicNames(responses="in", labels="out", dlq="in.dlq")),
        stream=StreamSettings(commit_interval=commit_interval),
        metrics=StreamMetrics(),
        holder=cast(Any, None),
        processor=cast(Any, processor),
        watcher=cast(Any, SimpleNamespace(assigned=threading.Event())),
        executor=cast(Any, None),
        stop_event=threading.Event(),
        app_id="g",
        crash=fatal.append,
    )
    holder: dict[str, ScriptedConsumer] = {}

    def factory(config: dict[str, Any]) -> ScriptedConsumer:
        assert config["group.id"] == "g" and config["enable.auto.commit"] is False
        consumer = ScriptedConsumer(batches, ingest, revoke_after)
        consumer.revoke_on_close = revoke_on_close
        processor.consumer = consumer
        holder["c"] = consumer
        return consumer

    ingest = BatchIngest(runtime, consumer_factory=factory)
    ingest.start()
    ingest.join(10)
    assert not ingest.is_alive()
    return ingest, holder["c"], runtime, fatal


def test_each_message_becomes_the_raw_record_of_its_own_fields() -> None:
    """BatchIngest._records builds RawRecords with tuple.__new__: every field in its place."""
    processor = RecordingProcessor()
    ingest, _, _, fatal = _run([[Msg(0, 3), Msg(1, 7, stamped=False)]], processor)
    assert ingest.clean_exit
    assert not fatal
    assert processor.batches == [
        [
            RawRecord(b"k0-3", b'{"at":3}', "in", 0, 3, 1_700_000_000_003),
            RawRecord(b"k1-7", b'{"at":7}', "in", 1, 7, None),
        ]
    ]
    assert all(type(r) is RawRecord for r in processor.batches[0])


def test_commits_follow_each_durable_batch_with_the_next_offsets() -> None:
    processor = RecordingProcessor()
    ingest, consumer, runtime, fatal = _run(
        [[Msg(0, 0), Msg(1, 5), Msg(0, 1)], [Msg(1, 6), Msg(0, 2)]], processor
    )
    assert ingest.clean_exit and not fatal and consumer.closed
    assert [len(b) for b in processor.batches] == [3, 2]
    # Every commit checked that it passed no record publish had not returned for
    # (ScriptedConsumer.commit); the first came once the first batch was durable.
    assert consumer.commits[0] == ({("in", 0): 2, ("in", 1): 6}, True)
    # The second is async too, or (if the interval had not yet passed) the sync one at shutdown.
    assert consumer.commits[1][0] == {("in", 0): 3, ("in", 1): 7}
    # The last is synchronous, at shutdown; it re-sends what an async commit sent and the broker
    # never confirmed (this fake calls no on_commit), and nothing else.
    assert [offsets for offsets, _ in consumer.commits[1:]] == [{("in", 0): 3, ("in", 1): 7}] * len(
        consumer.commits[1:]
    )
    assert consumer.commits[-1][1] is False and len(consumer.commits) <= 3
    assert runtime.checkpoint.committable() == {("in", 0): 3, ("in", 1): 7}
    assert runtime.rebalanced and runtime.assigned == [0, 1]
    assert ingest.unfinished() is None  # what the shared shutdown would say: nothing


def test_a_batch_interrupted_by_stopping_is_never_committed() -> None:
    processor = RecordingProcessor(fail_on=1, error=Stopping("stopping"))
    ingest, consumer, runtime, fatal = _run([[Msg(0, 0)], [Msg(0, 1), Msg(0, 2)]], processor)
    assert not ingest.clean_exit and not fatal and consumer.closed
    assert [offsets for offsets, _ in consumer.commits] == [{("in", 0): 1}]
    assert runtime.checkpoint.committable() == {("in", 0): 1}
    assert ingest.unfinished() == "in-flight batch not durable"


def test_a_failed_batch_is_never_committed_past_even_when_a_later_one_is_durable() -> None:
    processor = RecordingProcessor(fail_on=1, error=Stopping("stopping"))
    batches = [[Msg(0, 0)], [Msg(0, 1)], [Msg(0, 2), Msg(1, 0)], [Msg(0, 3)]]
    # close() revokes the partitions (as librdkafka does), and revoking waits for what is in
    # flight: batch 2 is durable by then, but batch 1 before it never was.
    ingest, consumer, _, fatal = _run(batches, processor, revoke_on_close=True)
    assert not ingest.clean_exit and not fatal and consumer.closed
    assert [r.offset for r in processor.batches[0]] == [0]
    assert all(offsets == {("in", 0): 1} for offsets, _ in consumer.commits)
    assert consumer.commits
    assert ingest.unfinished() == "in-flight batch not durable"


def test_our_own_bug_crashes_the_worker_uncommitted() -> None:
    processor = RecordingProcessor(fail_on=0, error=RuntimeError("bug"))
    ingest, consumer, runtime, fatal = _run([[Msg(0, 0)]], processor)
    assert consumer.commits == [] and consumer.closed and not ingest.clean_exit
    assert [str(e) for e in fatal] == ["bug"] and runtime.stop_event.is_set()


def test_revoked_partitions_are_committed_synchronously_first() -> None:
    processor = RecordingProcessor()
    ingest, consumer, runtime, fatal = _run(
        [[Msg(0, 0)], [Msg(0, 1), Msg(1, 0)]], processor, revoke_after=2, commit_interval=60
    )
    assert ingest.clean_exit and not fatal and runtime.assigned == []
    assert consumer.commits == [
        ({("in", 0): 1}, True),  # the first batch (the interval had long passed)
        ({("in", 0): 2}, False),  # partition 0 revoked before the next consume: sync, now
        ({("in", 1): 1}, False),  # what is left, at shutdown
    ]


@pytest.mark.parametrize("fatal_error", [True, False])
def test_consumer_errors(fatal_error: bool) -> None:
    processor = RecordingProcessor()
    batches = [[Msg(0, 0), Msg(0, -1, Err(fatal_error)), Msg(0, 1)]]
    ingest, consumer, runtime, fatal = _run(batches, processor)
    assert ingest.clean_exit is not fatal_error
    assert runtime.stop_event.is_set() is fatal_error
    if fatal_error:
        assert fatal and processor.batches == [] and consumer.commits == []
    else:  # a transient error is logged and skipped; the records around it are processed
        assert not fatal and [r.offset for r in processor.batches[0]] == [0, 1]
        assert consumer.commits[0] == ({("in", 0): 2}, True)


def test_a_group_held_by_another_protocol_is_explained_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from confluent_kafka import KafkaError

    held = KafkaError.INCONSISTENT_GROUP_PROTOCOL
    batches = [[Msg(0, -1, Err(False, held))], [Msg(0, -1, Err(False, held))], [Msg(0, 0)]]
    ingest, consumer, runtime, fatal = _run(batches, RecordingProcessor())
    assert ingest.clean_exit and not fatal and consumer.commits[0][0] == {("in", 0): 1}
    said = [r for r in caplog.records if "another group protocol" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "ERROR"
    assert not runtime.stop_event.is_set()
