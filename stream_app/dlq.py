"""Dead-letter envelopes: an invalid input kept whole, with why and where it came from.

The original value travels base64-encoded so that bytes that are not UTF-8 (or not JSON at all)
survive unchanged; the key stays the original key so the DLQ keeps the input's partitioning.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from personas.schemas import DeadLetter, utc_now

if TYPE_CHECKING:
    from stream_app.labelling import RawRecord

__all__ = ["dead_letter", "envelope", "original_value"]

#: Reasons are for people; a pathological validator message must not bloat the DLQ.
MAX_REASON_CHARS = 1000


def envelope(record: RawRecord, kind: str, reason: str) -> DeadLetter:
    return DeadLetter(
        error_kind=kind,
        reason=reason[:MAX_REASON_CHARS],
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        original_key=None if record.key is None else record.key.decode("utf-8", "replace"),
        original_value_b64=base64.b64encode(record.value or b"").decode("ascii"),
        failed_at=utc_now(),
    )


def dead_letter(record: RawRecord, kind: str, reason: str) -> tuple[bytes | None, bytes]:
    """(key, value) to produce to the DLQ topic for an input that failed validation."""
    return record.key, envelope(record, kind, reason).model_dump_json().encode()


def original_value(letter: DeadLetter) -> bytes:
    """The exact bytes that were dead-lettered (for replays and inspection)."""
    return base64.b64decode(letter.original_value_b64)
