"""The batch JSON encoder and the fast validation path against what they replaced (hypothesis).

``producer.payloads`` once built each value with pyarrow's float → text casts; it now takes the
numbers from orjson. Consumers must not see a difference: for any valid events, the new bytes
parse (stdlib JSON and the pydantic schema) to the same values as the previous encoding, which is
kept here verbatim as the reference, keep every float exactly, and validate against the exported
JSON Schema. ``validate_frame`` skips its general event_id checks when every id is a plain UUID;
it must find the same rows and errors either way.
"""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path
from typing import Any

import jsonschema_rs
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personas.catalogue import FEATURES, Catalogue
from personas.schemas import FEATURE_LIMIT, parse_survey_response
from producer import validation
from producer.generator import MonthSpec, generate_month
from producer.payloads import arrow_strings, build_payloads, format_timestamps
from producer.validation import Events, validate_frame

SCHEMA = Path(__file__).parents[3] / "docs" / "schemas" / "survey-responses.schema.json"
_YEAR_9999_US = 253_402_300_799_999_999


@pytest.fixture(scope="module")
def month(catalogue: Catalogue) -> pd.DataFrame:
    return generate_month(MonthSpec("2025-03", 5000, 2.0, 7), catalogue)


def _previous_payloads(events: Events) -> list[str]:
    """The encoding as it was before orjson (pyarrow kernels), the reference for consumers."""
    import pyarrow as pa
    import pyarrow.compute as pc

    respondent = arrow_strings(events.respondent_id)  # (the only change: Arrow input accepted)
    escape = pc.match_substring_regex(respondent, r'["\\\x00-\x1f]')
    respondent_json = pc.binary_join_element_wise('"', respondent, '"', "")
    if pc.any(escape).as_py():
        texts = respondent_json.to_pylist()
        for i in np.flatnonzero(escape.to_numpy(zero_copy_only=False)):
            texts[i] = json.dumps(respondent[int(i)].as_py(), ensure_ascii=False)
        respondent_json = pa.array(texts, pa.string())
    parts: list[object] = [
        '{"schema_version":1,"event_id":"',
        arrow_strings(events.event_id),
        '","respondent_id":',
        respondent_json,
        ',"submitted_at":"',
        pa.array(format_timestamps(events.submitted_us).tolist(), pa.string()),
        '"',
    ]
    for j, name in enumerate(FEATURES):
        parts.append(f',"{name}":')
        parts.append(pc.cast(pa.array(events.X[:, j]), pa.string()))
    truth = events.true_persona_id
    truth_text = pc.if_else(pa.array(truth < 0), "null", pc.cast(pa.array(truth), pa.string()))
    parts += [',"true_persona_id":', truth_text, "}"]
    out: list[str] = pc.binary_join_element_wise(*parts, "").to_pylist()
    return out


features = st.floats(-FEATURE_LIMIT, FEATURE_LIMIT, allow_nan=False, allow_subnormal=True)
rows = st.fixed_dictionaries(
    {
        "respondent": st.text(min_size=1, max_size=64),
        "us": st.one_of(
            st.integers(0, _YEAR_9999_US // 1000).map(lambda ms: ms * 1000),  # whole ms
            st.integers(0, _YEAR_9999_US),
        ),
        "x": st.lists(
            st.one_of(features, st.integers(-1000, 1000).map(float)), min_size=10, max_size=10
        ),
        "truth": st.one_of(st.just(-1), st.integers(0, 2**40)),
    }
)


def _events(batch: list[dict[str, Any]], seed: int) -> Events:
    rng = np.random.default_rng(seed)
    n = len(batch)
    return Events(
        event_id=np.array([str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in batch], object),
        respondent_id=np.array([r["respondent"] for r in batch], dtype=object),
        submitted_us=np.array([r["us"] for r in batch], dtype=np.int64),
        X=np.array([r["x"] for r in batch], dtype=np.float64).reshape(n, len(FEATURES)),
        true_persona_id=np.array([r["truth"] for r in batch], dtype=np.int64),
        line=np.arange(1, n + 1, dtype=np.int64),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(rows, min_size=1, max_size=30), seed=st.integers(0, 2**32 - 1))
def test_new_encoding_parses_to_the_previous_values(batch: list[dict[str, Any]], seed: int) -> None:
    events = _events(batch, seed)
    validator = jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))
    new, old = build_payloads(events), _previous_payloads(events)
    assert len(new) == len(old) == len(batch)
    for i, (value, before) in enumerate(zip(new, old, strict=True)):
        assert isinstance(value, bytes)
        data, reference = json.loads(value), json.loads(before)
        assert list(data) == list(reference)  # same keys, same order
        for name in FEATURES:  # the same number (int "1" before, "1.0" now), bit for bit
            assert data[name] == reference[name] == events.X[i, FEATURES.index(name)]
            assert math.copysign(1, data[name]) == math.copysign(
                1, events.X[i, FEATURES.index(name)]
            )
        assert {k: v for k, v in data.items() if k not in FEATURES} == {
            k: v for k, v in reference.items() if k not in FEATURES
        }
        assert parse_survey_response(value) == parse_survey_response(before.encode())
        validator.validate(data)


def test_the_encoder_is_byte_for_byte_the_previous_one_on_a_generated_month(
    month: pd.DataFrame,
) -> None:
    """Numbers aside (orjson writes 1.0 and 1e-05 as 1.0 and 0.00001, pyarrow as 1 and 1e-05),
    a month's values are the same bytes: text, ids, timestamps, separators."""
    events, _ = validate_frame(month)
    for value, before in zip(build_payloads(events), _previous_payloads(events), strict=True):
        assert value == before.encode()


uuids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: f" {u}"),
    st.sampled_from(["", "not-a-uuid", "4934b27f-1c79-4bf8-883a-210d927538cg"]),
    st.text(min_size=36, max_size=36),
)


@settings(max_examples=150, deadline=None)
@given(ids=st.lists(uuids, min_size=1, max_size=20), repeat=st.booleans())
def test_fast_event_id_checks_agree_with_the_general_ones(ids: list[str], repeat: bool) -> None:
    if repeat:
        ids = [*ids, ids[0].upper()]
    frame = pd.DataFrame(
        {
            "event_id": pd.Series(ids, dtype=object),
            "respondent_id": "resp-1",
            "submitted_at": pd.Timestamp("2025-03-01T00:00:00Z"),
            **{name: 1.0 for name in FEATURES},
        }
    )
    fast_events, fast_errors = validate_frame(frame)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(validation, "_plain_uuids", lambda arr: None)
        events, errors = validate_frame(frame)
    assert fast_errors == errors
    assert fast_events.event_id.tolist() == events.event_id.tolist()
    assert fast_events.line.tolist() == events.line.tolist()


def test_fast_path_is_taken_for_a_plain_month(month: pd.DataFrame) -> None:
    """The general checks are the fallback, not the norm: a generated month takes the fast one."""
    assert validation._plain_uuids(validation._strings(month["event_id"])[0]) is False
    upper = validation._strings(month["event_id"].str.upper())[0]
    assert validation._plain_uuids(upper) is True
    repeated = validation._strings(pd.concat([month["event_id"], month["event_id"].head(1)]))[0]
    assert validation._plain_uuids(repeated) is None
