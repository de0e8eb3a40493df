"""The staircase's fast stages do the worker's job, not less: the same events accepted, the same
labels, PersonaLabel documents and persona_labels rows (bench/staircase_steps.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from personas.catalogue import load_vendor_catalogue
from personas.model import CentroidModel
from personas.schemas import PersonaLabel, SurveyResponse
from producer.generator import MonthSpec, generate_month
from producer.payloads import build_payloads
from producer.validation import validate_frame
from stream_app.labelling import LABEL_COLUMNS

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

import staircase_steps as steps


@pytest.fixture(scope="module")
def payloads() -> list[bytes]:
    frame = generate_month(
        MonthSpec(month="2026-01", n=500, std=2.0, seed=3), load_vendor_catalogue()
    )
    events, errors = validate_frame(frame)
    assert not errors
    return build_payloads(events)


def test_valid_events_decode_to_what_the_contract_parses(payloads: list[bytes]) -> None:
    good, bad = steps.decode(payloads)
    assert bad == 0 and len(good) == len(payloads)
    for event, raw in zip(good, payloads, strict=True):
        expected = SurveyResponse.model_validate_json(raw)
        assert event.event_id == expected.event_id
        assert event.respondent_id == expected.respondent_id
        assert event.submitted_at == expected.submitted_at
    x = steps.features(good)
    reference = np.array([SurveyResponse.model_validate_json(r).features() for r in payloads])
    assert np.array_equal(x, reference)


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b'{"extra": 1, ',
        b"[]",
        b"{}",
        b"TWO VALID EVENTS",
    ],
)
def test_a_bad_event_costs_only_itself(payloads: list[bytes], bad: bytes) -> None:
    if bad == b"TWO VALID EVENTS":  # one value that is two array elements once joined
        bad = payloads[30] + b"," + payloads[31]
    good, wrong = steps.decode([*payloads[:10], bad, *payloads[10:20]])
    assert (len(good), wrong) == (20, 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("x3", "1001"),  # out of ±1000
        ("x3", '"1.5"'),  # a string number
        ("submitted_at", '"2026-01-01T00:00:00"'),  # naive
        ("respondent_id", '""'),  # empty
        ("schema_version", "2"),
        ("surplus", "1"),  # extra field
    ],
)
def test_the_contract_rules_are_enforced(payloads: list[bytes], field: str, value: str) -> None:
    import json

    doc = json.loads(payloads[0])
    doc.pop(field, None)
    raw = json.dumps(doc)[:-1] + f', "{field}": {value}}}'
    with pytest.raises(ValueError):
        SurveyResponse.model_validate_json(raw)  # the contract refuses it …
    assert steps.decode([raw.encode()]) == ([], 1)  # … and so does the fast path


def test_labels_rows_and_documents_match_the_project_model(payloads: list[bytes]) -> None:
    model = CentroidModel.from_catalogue(load_vendor_catalogue())
    nearest = steps.Nearest(model)
    good, _ = steps.decode(payloads)
    x = steps.features(good)
    labelled = nearest(x)
    reference = model.label(x)
    assert np.array_equal(labelled[0], reference.index)
    assert np.allclose(labelled[1], reference.distance)
    assert np.allclose(labelled[2], reference.margin)
    assert np.array_equal(labelled[3], reference.is_outlier)
    at = datetime(2026, 12, 2, tzinfo=UTC)
    labels, rows = steps.encode(good, x, labelled, nearest, at)
    for (key, value), row, event, i in zip(labels, rows, good, range(len(good)), strict=True):
        label = PersonaLabel.model_validate_json(value)
        assert key == event.respondent_id.encode()
        assert label.event_id == event.event_id and label.labelled_at == at
        assert label.persona_id == int(reference.persona_id[i])
        assert label.features() == (event.x1, event.x2, event.x3, event.x4, event.x5,
                                    event.x6, event.x7, event.x8, event.x9, event.x10)  # fmt: skip
        assert len(row) == len(LABEL_COLUMNS)
        stored = dict(zip(LABEL_COLUMNS, row, strict=True))
        assert stored["persona_name"] == label.persona_name
        assert stored["event_id"] == event.event_id and stored["respondent_id"] == key.decode()
        assert stored["submitted_at"] == event.submitted_at  # to the microsecond
        assert stored["persona_id"] == label.persona_id and stored["labelled_at"] == at
        assert stored["distance"] == label.distance and stored["is_outlier"] == label.is_outlier
        assert stored["x1"] == event.x1 and stored["x10"] == event.x10
