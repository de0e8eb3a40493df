"""Dead letters keep the original key and value bytes unchanged; why and where from travel in
headers (the Kafka Connect / KIP-1034 convention), decodable to the documented DeadLetter view."""

from __future__ import annotations

import base64

import pytest

from personas.dead_letters import MAX_REASON_CHARS, decode, is_dead_letter
from stream_app.dlq import dead_letter
from stream_app.records import RawRecord


def test_the_original_bytes_travel_unchanged() -> None:
    raw = bytes(range(256))
    record = RawRecord(b"\xffkey", raw, "survey-responses", 3, 42, 5)
    key, value, headers = dead_letter(record, "not_json", "value is not JSON")
    assert (key, value) == (b"\xffkey", raw)
    assert is_dead_letter(headers)
    letter = decode(key, value, headers)
    assert base64.b64decode(letter.original_value_b64) == raw
    assert letter.original_key == "\ufffdkey"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "survey-responses",
        3,
        42,
    )
    assert (letter.error_kind, letter.reason) == ("not_json", "value is not JSON")


def test_a_value_at_the_size_limit_gains_only_headers() -> None:
    raw = b"x" * 1_000_000
    _, value, headers = dead_letter(RawRecord(b"k", raw, "t", 0, 7), "oversized", "too big")
    assert value is raw
    assert sum(len(n) + len(v) for n, v in headers) < 400


def test_missing_key_and_value() -> None:
    key, value, headers = dead_letter(RawRecord(None, None, "t", 0, 0), "empty", "empty")
    letter = decode(key, value, headers)
    assert (key, value, letter.original_key) == (None, None, None)
    assert letter.original_value_b64 == ""


def test_reason_is_bounded() -> None:
    _, _, headers = dead_letter(RawRecord(None, b"x", "t", 0, 0), "invalid_field", "y" * 5000)
    assert len(decode(None, b"x", headers).reason) == MAX_REASON_CHARS


def test_a_record_without_the_headers_is_not_a_dead_letter() -> None:
    assert not is_dead_letter([("other", b"1")])
    with pytest.raises(ValueError, match="not a dead letter"):
        decode(b"k", b"v", None)
