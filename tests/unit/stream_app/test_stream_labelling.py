"""label_batch: validation, vectorised labelling, serialisation, dead letters (no Kafka, no DB)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import numpy as np
import pytest

from personas.catalogue import FEATURES
from personas.dead_letters import decode
from personas.model import CentroidModel
from personas.schemas import PersonaLabel
from stream_app.labelling import LABEL_COLUMNS, label_batch
from stream_app.records import RawRecord

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _event(i: int, x: np.ndarray) -> dict[str, object]:
    doc: dict[str, object] = {
        "schema_version": 1,
        "event_id": str(uuid.UUID(int=i + 1)),
        "respondent_id": f"r{i}",
        "submitted_at": "2026-03-01T10:00:00+01:00",
    }
    doc.update({name: float(v) for name, v in zip(FEATURES, x, strict=True)})
    return doc


def _records(docs: list[object], topic: str = "in") -> list[RawRecord]:
    out = []
    for offset, doc in enumerate(docs):
        value = doc if isinstance(doc, bytes) or doc is None else json.dumps(doc).encode()
        out.append(RawRecord(b"key%d" % offset, value, topic, 2, 100 + offset, 1_000 + offset))
    return out


def _brute_force(model: CentroidModel, x: np.ndarray) -> list[int]:
    distances = np.linalg.norm(x[:, None, :] - model.centroids[None, :, :], axis=2)
    return [model.persona_ids[i] for i in distances.argmin(axis=1)]


def test_labels_match_brute_force_nearest_centroid(vendor_model: CentroidModel) -> None:
    rng = np.random.default_rng(1)
    x = vendor_model.centroids[rng.integers(0, 3, 300)] + rng.normal(0, 3, (300, 10))
    out = label_batch(_records([_event(i, row) for i, row in enumerate(x)]), vendor_model, now=NOW)
    labels = [PersonaLabel.model_validate_json(value) for _, value in out.labels]
    assert [label.persona_id for label in labels] == _brute_force(vendor_model, x)
    assert [key for key, _ in out.labels] == [f"r{i}".encode() for i in range(300)]
    assert {label.model_version for label in labels} == {0}
    assert all(label.labelled_at == NOW for label in labels)
    np.testing.assert_allclose([label.features() for label in labels], x)
    first = labels[0]
    assert first.submitted_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert first.persona_name == vendor_model.name_of(first.persona_id)
    assert out.dead_letters == [] and out.error_kinds == {}
    assert out.event_timestamps_ms == [1_000 + i for i in range(300)]


def test_rows_follow_the_table_columns(vendor_model: CentroidModel) -> None:
    x = vendor_model.centroids[1] + 0.5
    out = label_batch(_records([_event(0, x)]), vendor_model, now=NOW)
    (row,) = out.rows
    assert len(row) == len(LABEL_COLUMNS)
    values = dict(zip(LABEL_COLUMNS, row, strict=True))
    assert values["event_id"] == uuid.UUID(int=1)
    assert values["persona_id"] == vendor_model.persona_ids[1]
    assert values["distance"] == pytest.approx(np.sqrt(10 * 0.25))
    assert values["is_outlier"] is False
    assert values["model_version"] == 0
    assert values["labelled_at"] == NOW
    assert [values[f] for f in FEATURES] == pytest.approx(list(x))


def test_bad_events_become_dead_letters_and_good_ones_still_flow(
    vendor_model: CentroidModel,
) -> None:
    good = _event(0, vendor_model.centroids[0])
    bad: list[object] = [
        b"not json {",
        None,
        b"",
        b"[1, 2]",
        {**good, "x3": "7.5"},
        {**good, "schema_version": 9},
        {k: v for k, v in good.items() if k != "x4"},
        {**good, "x5": 1e9},
        b"\xff\xfe binary",
        b'{"x1": NaN}',
        b"{" + b" " * 20_000 + b"}",
    ]
    out = label_batch(_records([*bad, good]), vendor_model, now=NOW)
    assert len(out.labels) == 1 and len(out.rows) == 1
    assert len(out.dead_letters) == len(bad)
    assert out.n_in == len(bad) + 1
    letters = [decode(*letter) for letter in out.dead_letters]
    kinds = [letter.error_kind for letter in letters]
    assert kinds == [
        "not_json", "empty", "empty", "not_object", "invalid_field", "unknown_schema_version",
        "invalid_field", "invalid_field", "not_json", "non_finite", "oversized",
    ]  # fmt: skip
    assert out.error_kinds == {
        "not_json": 2, "empty": 2, "not_object": 1, "invalid_field": 3,
        "unknown_schema_version": 1, "non_finite": 1, "oversized": 1,
    }  # fmt: skip
    for offset, (letter, (key, _, _)) in enumerate(zip(letters, out.dead_letters, strict=True)):
        assert key == b"key%d" % offset
        assert letter.source_offset == 100 + offset and letter.source_partition == 2
        assert letter.source_topic == "in"
        assert letter.reason
    assert out.dead_letters[0][1] == b"not json {"  # the original bytes, unchanged
    assert out.dead_letters[8][1] == b"\xff\xfe binary"
    assert base64.b64decode(letters[8].original_value_b64) == b"\xff\xfe binary"
    assert "x4" in letters[6].reason and "x3" in letters[4].reason


def test_empty_batch(vendor_model: CentroidModel) -> None:
    out = label_batch([], vendor_model, now=NOW)
    assert (out.labels, out.rows, out.dead_letters, out.n_in) == ([], [], [], 0)


def test_every_label_carries_the_version_of_the_model_used(vendor_model: CentroidModel) -> None:
    model = CentroidModel.from_dict({**vendor_model.to_dict(), "version": 7})
    out = label_batch(_records([_event(i, model.centroids[i % 3]) for i in range(5)]), model)
    assert {PersonaLabel.model_validate_json(v).model_version for _, v in out.labels} == {7}
    assert {row[LABEL_COLUMNS.index("model_version")] for row in out.rows} == {7}


def test_fast_path_accepts_and_rejects_exactly_like_parse_survey_response(
    vendor_model: CentroidModel,
) -> None:
    from personas.errors import InvalidEvent
    from personas.schemas import parse_survey_response
    from stream_app.labelling import parse

    good = _event(0, vendor_model.centroids[0])
    corpus: list[bytes | None] = [
        json.dumps(good).encode(),
        json.dumps({k: v for k, v in good.items() if k != "schema_version"}).encode(),
        json.dumps({**good, "x1": 3}).encode(),  # an integer feature is a number
        json.dumps({**good, "x1": True}).encode(),
        json.dumps({**good, "x1": "1.0"}).encode(),
        json.dumps({**good, "x2": None}).encode(),
        json.dumps({**good, "true_persona_id": -1}).encode(),
        json.dumps({**good, "respondent_id": ""}).encode(),
        json.dumps({**good, "submitted_at": "yesterday"}).encode(),
        b'{"x1": 1e400}',
        b'{"x1": Infinity}',
        b"\xef\xbb\xbf" + json.dumps(good).encode(),  # UTF-8 BOM
        b"  " + json.dumps(good).encode() + b"\n",
        b"null",
        b"123",
        None,
    ]
    for raw in corpus:
        try:
            expected: object = parse_survey_response(raw)
        except InvalidEvent as exc:
            expected = (exc.kind, exc.reason)
        try:
            got: object = parse(raw)
        except InvalidEvent as exc:
            got = (exc.kind, exc.reason)
        assert got == expected, raw


def test_an_event_from_the_future_is_dead_lettered(vendor_model: CentroidModel) -> None:
    from datetime import timedelta

    good = {
        "schema_version": 1,
        "respondent_id": "r",
        **{f: 0.0 for f in FEATURES},
    }
    soon = {**good, "event_id": str(uuid.uuid4()), "submitted_at": "2026-01-01T00:59:00Z"}
    late = {**good, "event_id": str(uuid.uuid4()), "submitted_at": "2031-01-01T00:00:00Z"}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    out = label_batch(_records([soon, late]), vendor_model, now=now)
    assert len(out.labels) == 1
    assert out.error_kinds == {"future_timestamp": 1}
    letter = decode(*out.dead_letters[0])
    assert "2031-01-01T00:00:00Z" in letter.reason and "FUTURE_MARGIN" in letter.reason
    wider = label_batch(
        _records([late]), vendor_model, now=now, future_margin=timedelta(days=365 * 6)
    )
    assert len(wider.labels) == 1
