"""personas.survey_fast accepts only what SurveyResponse accepts, with the same values.

Hypothesis builds survey documents around the contract — valid ones in every form the contract
allows and invalid ones next to each rule (wrong types, out of range, missing and extra fields,
other UUID and timestamp spellings, duplicate keys, broken bytes) — and compares the stream's
decision (``label_batch``: msgspec fast path, then pydantic) with ``parse_survey_response``, the
contract's own validator: same accept/reject decision, same DLQ kind and reason, same values.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from personas.catalogue import FEATURES
from personas.errors import InvalidEvent
from personas.model import CentroidModel
from personas.schemas import MAX_EVENT_BYTES, SurveyResponse, parse_survey_response
from personas.survey_fast import _STAMP, decode_survey_response
from stream_app.labelling import label_batch
from stream_app.records import RawRecord

NOW = datetime(9000, 1, 1, tzinfo=UTC)  # no generated event is from the future

_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_aware = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(8999, 12, 31), timezones=_offsets
)


def _stamp_text(value: datetime, style: int) -> str:
    text = value.isoformat()
    if style == 1:
        return text.replace("+00:00", "Z")
    if style == 2:
        return text.replace("T", " ")
    if style == 3:
        return text.lower()
    if style == 4 and value.microsecond:
        return text.replace(f".{value.microsecond:06d}", f".{value.microsecond:06d}7")
    return text


stamps = st.one_of(
    st.builds(_stamp_text, _aware, st.integers(0, 4)),
    st.from_regex(_STAMP, fullmatch=True),  # the narrow form with any digits, valid dates or not
    st.datetimes().map(datetime.isoformat),  # naive
    st.integers(-(10**10), 10**10),  # pydantic takes Unix time; the narrow form does not
    st.text(max_size=30),
)
event_ids = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: f"{{{u}}}"),
    st.text(max_size=40),
    st.integers(),
)
features = st.one_of(
    st.floats(-1000, 1000),
    st.integers(-1000, 1000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**30), 10**30),
    st.sampled_from([1000.0, -1000.0, 1000.0000001, -0.0, 5e-324, True, None, "1.5", [1.0]]),
)
respondents = st.one_of(
    st.text(min_size=1, max_size=64),
    st.text(min_size=64, max_size=66),  # at the limit, one and two over
    st.sampled_from(["", "\U0001f600" * 64, "\U0001f600" * 65, "\x00", '\\"']),
    st.integers(),
    st.none(),
)
OPTIONAL: Any = object()  # a key left out


valid_stamps = st.builds(_stamp_text, _aware, st.sampled_from([0, 1]))
WIDE: dict[str, Any] = {
    "schema_version": st.sampled_from([2, 0, 1.0, True, "1", None]),
    "event_id": event_ids,
    "respondent_id": respondents,
    "submitted_at": stamps,
    "true_persona_id": st.one_of(st.integers(-3, 2**70), st.sampled_from([1.0, 1.5, True, "2"])),
    **{name: features for name in FEATURES},
}


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event in one of the contract's forms, then none, one or two rules broken."""
    doc: dict[str, Any] = {
        "schema_version": draw(st.sampled_from([1, OPTIONAL])),
        "event_id": str(draw(st.uuids())),
        "respondent_id": draw(st.text(min_size=1, max_size=64)),
        "submitted_at": draw(valid_stamps),
        **{name: draw(st.floats(-1000, 1000)) for name in FEATURES},
        "true_persona_id": draw(st.sampled_from([OPTIONAL, None, 0, 3])),
    }
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2]))):
        how = draw(st.integers(0, 9))
        if how == 0:
            doc.pop(draw(st.sampled_from(sorted(doc))))
        elif how == 1:
            doc[draw(st.sampled_from(["extra", "submitted", "X1", "persona_id"]))] = 1
        else:
            name = draw(st.sampled_from(sorted(WIDE)))
            doc[name] = draw(WIDE[name])
    return {k: v for k, v in doc.items() if v is not OPTIONAL}


@st.composite
def raw_events(draw: st.DrawFn) -> bytes:
    doc = draw(documents())
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    how = draw(st.integers(0, 19))
    if how == 0 and len(raw) > 2:  # a duplicate key: the last one counts for every parser
        key = draw(st.sampled_from(sorted(doc)))
        raw = raw[:-1] + b"," + json.dumps(key).encode() + b":" + json.dumps(doc[key]).encode()
        raw += b"}"
    elif how == 1:  # a damaged byte
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    elif how == 2:
        raw = b" \n" + raw + b"\t"
    elif how == 3:  # valid JSON, over the size limit by a few bytes of padding
        raw = raw + b" " * (MAX_EVENT_BYTES - len(raw) + draw(st.integers(-1, 2)))
    return raw


def _reference(raw: bytes) -> SurveyResponse | tuple[str, str]:
    try:
        return parse_survey_response(raw)
    except InvalidEvent as exc:
        return exc.kind, exc.reason


def _same_float(a: float, b: float) -> bool:
    return type(a) is type(b) is float and a == b and math.copysign(1, a) == math.copysign(1, b)


def _check(raw: bytes, model: CentroidModel) -> None:
    expected = _reference(raw)
    out = label_batch([RawRecord(b"k", raw, "t", 0, 7, 1)], model, now=NOW)
    if isinstance(expected, tuple):
        assert out.labels == [] and len(out.dead_letters) == 1, raw
        assert out.error_kinds == {expected[0]: 1}, raw
        headers = dict(out.dead_letters[0][2])
        assert headers["persona.errors.reason"].decode() == expected[1], raw
        assert decode_survey_response(raw) is None
        return
    assert len(out.labels) == 1 and out.dead_letters == [], raw
    (row,) = list(out.rows)
    assert row[0] == expected.event_id and row[1] == expected.respondent_id
    assert row[2] == expected.submitted_at and row[2].utcoffset() == timedelta(0)
    for got, want in zip(row[3:13], expected.features(), strict=True):
        assert _same_float(got, want), (raw, got, want)
    fast = decode_survey_response(raw)
    if fast is not None:  # the narrow form: the struct itself carries the normalised values
        event, submitted = fast
        assert uuid.UUID(event.event_id) == expected.event_id
        assert event.event_id == str(expected.event_id)
        assert submitted == expected.submitted_at
        assert event.true_persona_id == expected.true_persona_id
        assert event.respondent_id == expected.respondent_id
        for name in FEATURES:
            assert _same_float(getattr(event, name), getattr(expected, name)), (raw, name)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_events())
@example(raw=b'{"event_id":"00000000-0000-0000-0000-000000000001","respondent_id":"r",'
         b'"submitted_at":"2026-01-01T00:00:00.1234567Z",' + b",".join(
             b'"%s":0' % f.encode() for f in FEATURES) + b"}")  # fmt: skip
def test_the_fast_path_decides_and_normalises_like_the_contract(
    raw: bytes, vendor_model: CentroidModel
) -> None:
    _check(raw, vendor_model)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_most_valid_documents_take_the_fast_path(
    doc: dict[str, Any], vendor_model: CentroidModel
) -> None:
    """Not a vacuous equivalence: canonical valid events are decided by msgspec alone."""
    raw = json.dumps(doc).encode()
    _check(raw, vendor_model)
    canonical = {
        "event_id": str(uuid.uuid4()),
        "respondent_id": "r1",
        "submitted_at": "2026-03-01T10:00:00.5+01:00",
        **{f: 0.5 for f in FEATURES},
    }
    assert decode_survey_response(json.dumps(canonical).encode()) is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raws=st.lists(st.one_of(raw_events(), documents().map(lambda d: json.dumps(d).encode()))))
def test_a_batch_is_decided_like_its_events_one_by_one(
    raws: list[bytes], vendor_model: CentroidModel
) -> None:
    """``decode_all`` (the whole batch in C loops, when every event is in the narrow form) gives
    what deciding each event alone gives: same labels, rows and dead letters, in order."""
    records = [RawRecord(b"k", raw, "t", 0, i, i) for i, raw in enumerate(raws)]
    batch = label_batch(records, vendor_model, now=NOW)
    alone = [label_batch([record], vendor_model, now=NOW) for record in records]

    def exact(doc: dict[str, Any]) -> dict[str, Any]:
        # distance and margin come from one matrix product per batch: the last bits depend on
        # the batch's size (BLAS), whichever way the events were decoded
        return {k: v for k, v in doc.items() if k not in ("distance", "margin")}

    got = [(key, json.loads(value)) for key, value in batch.labels]
    want = [(key, json.loads(value)) for one in alone for key, value in one.labels]
    assert [(key, exact(doc)) for key, doc in got] == [(key, exact(doc)) for key, doc in want]
    for (_, a), (_, b) in zip(got, want, strict=True):
        assert math.isclose(a["distance"], b["distance"], rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(a["margin"], b["margin"], rel_tol=1e-9, abs_tol=1e-6)
    rows = [row[:15] + row[17:] for row in batch.rows]  # all but distance and margin
    assert rows == [row[:15] + row[17:] for one in alone for row in one.rows]
    assert batch.event_timestamps_ms == [ts for one in alone for ts in one.event_timestamps_ms]

    def letters(outs: list[Any]) -> list[tuple[Any, ...]]:
        return [
            (key, value, dict(headers)["persona.errors.reason"])
            for out in outs
            for key, value, headers in out.dead_letters
        ]

    assert letters([batch]) == letters(alone)
    assert batch.error_kinds == {
        kind: sum(one.error_kinds.get(kind, 0) for one in alone)
        for kind in {k for one in alone for k in one.error_kinds}
    }
