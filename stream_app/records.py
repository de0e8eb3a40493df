"""What both engines hand to the pipeline: one consumed Kafka record, and the offsets to commit.

A module of its own because everything downstream of the consumer needs these two names (the
labelling core, the DLQ, the agent's batcher, both engines, the runtime) and they need nothing
back: kept in ``labelling.py`` they tied ``dlq.py`` and ``labelling.py`` into an import cycle.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

__all__ = ["RawRecord", "next_offsets"]


class RawRecord(NamedTuple):
    """One consumed Kafka record, as bytes: what the DLQ must be able to give back intact.

    A ``NamedTuple`` (immutable, like the frozen dataclass it was): one is built per consumed
    message, and a frozen dataclass's ``__init__`` cost 2× as much (docs/benchmarks/stream_app.md,
    "Profile")."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None


def next_offsets(records: list[RawRecord]) -> dict[tuple[str, int], int]:
    """Per partition, the offset to commit once these records are durable (last offset + 1).

    One C-level pass (``dict`` over pairs keeps each partition's last record): a per-record
    Python loop was 3.5 % of the batch engine's consumer thread at 80k events/s. Records come
    in consume order, in which a partition's offsets only rise, so its last record is its
    highest; were they ever out of order, the lower offset committed would mean re-delivery
    (idempotent downstream), never a loss."""
    topics = map(_TOPIC, records)
    partitions = map(_PARTITION, records)
    ends = map((1).__add__, map(_OFFSET, records))
    return dict(zip(zip(topics, partitions, strict=True), ends, strict=True))


_TOPIC = operator.itemgetter(2)
_PARTITION = operator.itemgetter(3)
_OFFSET = operator.itemgetter(4)
