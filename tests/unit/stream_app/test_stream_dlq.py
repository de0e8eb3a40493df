"""Dead-letter envelopes keep the original bytes, the key and where the input came from."""

from __future__ import annotations

from personas.schemas import DeadLetter
from stream_app.dlq import MAX_REASON_CHARS, dead_letter, envelope, original_value
from stream_app.labelling import RawRecord


def test_envelope_round_trips_arbitrary_bytes() -> None:
    raw = bytes(range(256))
    record = RawRecord(b"\xffkey", raw, "survey-responses", 3, 42, 5)
    key, value = dead_letter(record, "not_json", "value is not JSON")
    letter = DeadLetter.model_validate_json(value)
    assert key == b"\xffkey"
    assert original_value(letter) == raw
    assert letter.original_key == "\ufffdkey"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        "survey-responses",
        3,
        42,
    )
    assert (letter.error_kind, letter.reason) == ("not_json", "value is not JSON")


def test_missing_key_and_value() -> None:
    letter = envelope(RawRecord(None, None, "t", 0, 0), "empty", "the message value is empty")
    assert letter.original_key is None
    assert original_value(letter) == b""


def test_reason_is_bounded() -> None:
    letter = envelope(RawRecord(None, b"x", "t", 0, 0), "invalid_field", "y" * 5000)
    assert len(letter.reason) == MAX_REASON_CHARS
