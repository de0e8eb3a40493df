"""stream_app.records: the offsets a durable batch commits, and the RawRecord the batch engine
builds without the NamedTuple's Python ``__new__``."""

from __future__ import annotations

from stream_app.records import RawRecord, next_offsets


def _record(topic: str, partition: int, offset: int) -> RawRecord:
    return RawRecord(b"k", b"v", topic, partition, offset, 1)


def test_each_partition_commits_its_last_offset_plus_one() -> None:
    records = [
        _record("a", 0, 5),
        _record("a", 1, 40),
        _record("b", 0, 7),
        _record("a", 0, 6),
        _record("a", 1, 41),
        _record("a", 0, 9),
    ]
    assert next_offsets(records) == {("a", 0): 10, ("a", 1): 42, ("b", 0): 8}


def test_an_empty_batch_commits_nothing() -> None:
    assert next_offsets([]) == {}


def test_a_record_built_by_tuple_new_is_the_same_record() -> None:
    """What BatchIngest._records builds: equal, same type, same field access."""
    built = tuple.__new__(RawRecord, (b"k", b"v", "t", 2, 9, None))
    assert built == RawRecord(b"k", b"v", "t", 2, 9, None)
    assert type(built) is RawRecord
    assert (built.topic, built.partition, built.offset, built.timestamp_ms) == ("t", 2, 9, None)
