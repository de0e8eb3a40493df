"""Dead letters as Kafka Connect and Kafka Streams (KIP-1034) write them: the original key and
value bytes unchanged, and why and where from in headers.

A dead letter must always fit where its record came from: an envelope that embeds the value
(base64 in JSON, a third larger) can exceed the broker's limit for a value the source topic
accepted, and a worker that cannot dead-letter a record cannot move past it. With the bytes
unchanged, the DLQ topic only needs room for the headers (``DLQ_EXTRA_BYTES``, given to the DLQ
topic and to the stream's producer). :class:`personas.schemas.DeadLetter` stays the documented
JSON view of a dead letter: :func:`decode` builds it from a record, e.g. for ``persona tail dlq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from personas.schemas import DeadLetter, utc_now

__all__ = [
    "DLQ_EXTRA_BYTES",
    "HEADER_PREFIX",
    "Headers",
    "decode",
    "decode_source",
    "encode_headers",
    "is_dead_letter",
]

Headers = list[tuple[str, bytes]]

#: Every header name starts with it (Kafka Streams uses ``__streams.errors.``, Connect
#: ``__connect.errors.``).
HEADER_PREFIX = "persona.errors."
#: Room above the source topic's record limit that the DLQ topic and producer get for headers.
DLQ_EXTRA_BYTES = 64 * 1024
#: Reasons are for people; a pathological validator message must not bloat the DLQ.
MAX_REASON_CHARS = 1000

_KIND, _REASON = HEADER_PREFIX + "kind", HEADER_PREFIX + "reason"
_TOPIC, _PARTITION, _OFFSET = (HEADER_PREFIX + n for n in ("topic", "partition", "offset"))
_FAILED_AT, _VERSION = HEADER_PREFIX + "failed_at", HEADER_PREFIX + "schema_version"


def encode_headers(
    kind: str,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    failed_at: datetime | None = None,
) -> Headers:
    """The headers of a dead letter (UTF-8 text values)."""
    at = (failed_at or utc_now()).isoformat().replace("+00:00", "Z")
    return [
        (_VERSION, b"1"),
        (_KIND, kind.encode()),
        (_REASON, reason[:MAX_REASON_CHARS].encode("utf-8", "replace")),
        (_TOPIC, topic.encode()),
        (_PARTITION, str(partition).encode()),
        (_OFFSET, str(offset).encode()),
        (_FAILED_AT, at.encode()),
    ]


def decode_source(headers: Sequence[tuple[str, bytes | None]] | None) -> str:
    """``topic[partition]@offset`` of the record a dead letter stands for (for log lines)."""
    found = {name: (v or b"").decode("utf-8", "replace") for name, v in headers or ()}
    return f"{found.get(_TOPIC, '?')}[{found.get(_PARTITION, '?')}]@{found.get(_OFFSET, '?')}"


def is_dead_letter(headers: Sequence[tuple[str, bytes | None]] | None) -> bool:
    return any(name == _KIND for name, _ in headers or ())


def decode(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None
) -> DeadLetter:
    """The documented JSON view of a dead-letter record (ValueError if it is not one)."""
    import base64

    found = {name: (v or b"").decode("utf-8", "replace") for name, v in headers or ()}
    if _KIND not in found:
        raise ValueError("not a dead letter: no persona.errors.kind header")
    return DeadLetter(
        error_kind=found[_KIND],
        reason=found.get(_REASON, ""),
        source_topic=found.get(_TOPIC, ""),
        source_partition=int(found.get(_PARTITION, "-1")),
        source_offset=int(found.get(_OFFSET, "-1")),
        original_key=None if key is None else key.decode("utf-8", "replace"),
        original_value_b64=base64.b64encode(value or b"").decode("ascii"),
        failed_at=datetime.fromisoformat(found[_FAILED_AT]) if _FAILED_AT in found else utc_now(),
    )
