"""Schema validation at the edge: good events pass, each kind of bad one fails readably."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from personas.errors import InvalidEvent
from personas.schema_export import topic_json_schemas
from personas.schemas import MAX_EVENT_BYTES, TOPIC_SCHEMAS, parse_survey_response


def good_event(**overrides: object) -> dict[str, object]:
    event: dict[str, object] = {
        "schema_version": 1,
        "event_id": str(uuid.uuid4()),
        "respondent_id": "r-1",
        "submitted_at": "2025-03-04T05:06:07+00:00",
        **{f"x{i}": float(i) for i in range(1, 11)},
    }
    event.update(overrides)
    return event


def encode(event: object) -> bytes:
    return json.dumps(event).encode()


def test_good_event_parses_and_is_utc():
    tz = timezone(timedelta(hours=2))
    event = parse_survey_response(
        encode(good_event(submitted_at=datetime(2025, 3, 4, 7, 0, tzinfo=tz).isoformat()))
    )
    assert event.submitted_at == datetime(2025, 3, 4, 5, 0, tzinfo=UTC)
    assert event.features() == tuple(float(i) for i in range(1, 11))


def test_integers_are_accepted_as_features():
    assert parse_survey_response(encode(good_event(x3=4))).x3 == 4.0


@pytest.mark.parametrize(
    ("raw", "kind", "reason"),
    [
        (b"", "empty", "empty"),
        (None, "empty", "empty"),
        (b"{not json", "not_json", "not JSON"),
        (b"\xff\xfe", "not_json", "not JSON"),
        (b"[1, 2]", "not_object", "JSON list"),
        (b"x" * (MAX_EVENT_BYTES + 1), "oversized", "byte limit"),
        (encode(good_event(schema_version=2)), "unknown_schema_version", "schema_version 2"),
        (encode(good_event(x1="1.5")), "invalid_field", "x1"),
        (encode(good_event(x2=True)), "invalid_field", "x2"),
        (encode(good_event(x3=None)), "invalid_field", "x3"),
        (encode(good_event(x4=1e6)), "invalid_field", "x4"),
        (encode(good_event(x5=-1e6)), "invalid_field", "x5"),
        (encode({k: v for k, v in good_event().items() if k != "x10"}), "invalid_field", "x10"),
        (encode(good_event(event_id="nope")), "invalid_field", "event_id"),
        (encode(good_event(respondent_id="")), "invalid_field", "respondent_id"),
        (encode(good_event(submitted_at="2025-03-04T05:06:07")), "invalid_field", "submitted_at"),
        (encode(good_event(colour="red")), "invalid_field", "colour"),
        (encode(good_event()).replace(b'"x6": 6.0', b'"x6": NaN'), "non_finite", "x6"),
        (encode(good_event()).replace(b'"x7": 7.0', b'"x7": Infinity'), "non_finite", "x7"),
    ],
)
def test_each_kind_of_bad_event_is_rejected_readably(raw, kind, reason):
    with pytest.raises(InvalidEvent) as caught:
        parse_survey_response(raw)
    assert caught.value.kind == kind
    assert reason in caught.value.reason


def test_every_topic_has_an_exportable_json_schema():
    schemas = topic_json_schemas()
    assert set(schemas) == set(TOPIC_SCHEMAS)
    response = schemas["survey-responses"]
    assert set(response["required"]) >= {"event_id", "respondent_id", "submitted_at", "x1", "x10"}
    assert "oneOf" in schemas["drift-alerts"] or "anyOf" in schemas["drift-alerts"]
