"""Dead letters of the stream worker: the invalid input's own key and value bytes, unchanged, with
the reason and where it came from in headers (personas.dead_letters, the Kafka Connect / KIP-1034
convention), so a dead letter always fits where its record came from."""

from __future__ import annotations

from personas.dead_letters import Headers, encode_headers
from stream_app.records import RawRecord

__all__ = ["DeadLetterRecord", "dead_letter"]

#: (key, value, headers) as produced to the DLQ topic.
DeadLetterRecord = tuple[bytes | None, bytes | None, Headers]


def dead_letter(record: RawRecord, kind: str, reason: str) -> DeadLetterRecord:
    """What to produce to the DLQ topic for an input that failed validation."""
    headers = encode_headers(kind, reason, record.topic, record.partition, record.offset)
    return record.key, record.value, headers
