"""personas.label_fast accepts only what PersonaLabel accepts, with the same values.

Hypothesis builds label documents around the contract — valid ones in the forms the contract
allows and invalid ones next to each rule (wrong types, missing and extra fields, other UUID and
timestamp spellings, impossible dates, big integers, broken bytes) — and compares the monitor's
fast decoder with ``PersonaLabel.model_validate_json``, the contract's own validator: whatever the
fast path accepts, pydantic accepts with the same values; a batch decodes as its labels one by one.
"""

from __future__ import annotations

import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_survey_fast import event_ids, features, stamps, valid_stamps

from personas.catalogue import FEATURES
from personas.label_fast import decode_label, decode_labels, features_of, from_model
from personas.schemas import PersonaLabel

integers = st.one_of(
    st.integers(-5, 2**70),
    st.integers(-(2**64), -(2**62)),
    st.sampled_from([1.0, 1.5, True, False, "2", None, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1]),
)
texts = st.one_of(st.text(max_size=20), st.integers(), st.none(), st.sampled_from(["", "\x00"]))
booleans = st.one_of(st.booleans(), st.sampled_from([0, 1, "true", "false", None, 1.0]))
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(10**30), 10**30),
    st.sampled_from([True, None, "1.5", 10**400, -0.0, 5e-324]),
)
WIDE: dict[str, Any] = {
    "schema_version": st.sampled_from([2, 0, 1.0, True, "1", None]),
    "event_id": event_ids,
    "respondent_id": texts,
    "submitted_at": stamps,
    "labelled_at": stamps,
    "persona_id": integers,
    "persona_name": texts,
    "distance": floats,
    "margin": floats,
    "is_outlier": booleans,
    "model_version": integers,
    **{name: features for name in FEATURES},
}
OPTIONAL: Any = object()  # a key left out


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid label in one of the contract's forms, then none, one or two rules broken."""
    doc: dict[str, Any] = {
        "schema_version": draw(st.sampled_from([1, OPTIONAL])),
        "event_id": str(draw(st.uuids())),
        "respondent_id": draw(st.text(max_size=20)),
        "submitted_at": draw(valid_stamps),
        "persona_id": draw(st.integers(0, 9)),
        "persona_name": draw(st.text(max_size=20)),
        "distance": draw(st.floats(0, 100)),
        "margin": draw(st.floats(0, 100)),
        "is_outlier": draw(st.booleans()),
        "model_version": draw(st.integers(0, 50)),
        "labelled_at": draw(valid_stamps),
        **{name: draw(st.floats(-1000, 1000)) for name in FEATURES},
    }
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2]))):
        how = draw(st.integers(0, 9))
        if how == 0:
            doc.pop(draw(st.sampled_from(sorted(doc))))
        elif how == 1:
            doc[draw(st.sampled_from(["extra", "x11", "X1", "true_persona_id"]))] = 1
        else:
            name = draw(st.sampled_from(sorted(WIDE)))
            doc[name] = draw(WIDE[name])
    return {k: v for k, v in doc.items() if v is not OPTIONAL}


@st.composite
def raw_labels(draw: st.DrawFn) -> bytes:
    doc = draw(documents())
    raw = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    how = draw(st.integers(0, 14))
    if how == 0 and len(raw) > 2:  # a duplicate key: the last one counts for every parser
        key = draw(st.sampled_from(sorted(doc)))
        raw = raw[:-1] + b"," + json.dumps(key).encode() + b":" + json.dumps(doc[key]).encode()
        raw += b"}"
    elif how == 1:  # a damaged byte
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    elif how == 2:
        raw = b" \n" + raw + b"\t"
    return raw


def _same_float(a: float, b: float) -> bool:
    return type(a) is type(b) is float and a == b and math.copysign(1, a) == math.copysign(1, b)


def _check(raw: bytes) -> None:
    try:
        expected: PersonaLabel | None = PersonaLabel.model_validate_json(raw)
    except ValidationError:
        expected = None
    fast = decode_label(raw)
    batch = decode_labels([raw])
    assert (batch is None) == (fast is None), raw
    if fast is None:
        return
    assert expected is not None, raw  # narrower: nothing pydantic refuses gets through
    label, submitted = fast
    assert batch is not None and batch[0] == [label] and batch[1] == [submitted]
    assert label.event_id == str(expected.event_id)
    assert (
        submitted == expected.submitted_at
        and submitted.utcoffset() == expected.submitted_at.utcoffset()
    )
    for name in ("respondent_id", "persona_id", "persona_name", "is_outlier", "model_version"):
        got, want = getattr(label, name), getattr(expected, name)
        assert got == want and type(got) is type(want), (raw, name)
    for name in ("distance", "margin", *FEATURES):
        assert _same_float(getattr(label, name), getattr(expected, name)), (raw, name)
    assert features_of(label) == expected.features()
    # what the monitor builds for a label pydantic accepted in another spelling
    assert from_model(expected).event_id == label.event_id


_CANONICAL = (
    b'{"schema_version":1,"event_id":"00000000-0000-0000-0000-000000000001","respondent_id":"r",'
    b'"submitted_at":"2026-01-01T00:00:00.123456Z","persona_id":1,"persona_name":"p",'
    b'"distance":1.0,"margin":0.5,"is_outlier":false,"model_version":3,'
    b'"labelled_at":"2026-01-01T00:00:01Z",' + b",".join(b'"%s":0.5' % f.encode() for f in FEATURES)
    + b"}"
)  # fmt: skip


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_labels())
@example(raw=_CANONICAL)
@example(raw=_CANONICAL.replace(b"2026-01-01T00:00:00.123456Z", b"2026-02-30T00:00:00Z"))
@example(raw=_CANONICAL.replace(b"00:00:01Z", b"00:00:01.1234567Z"))
@example(raw=_CANONICAL.replace(b"2026-01-01T00:00:01Z", b"2026-02-30T00:00:01Z"))
@example(raw=_CANONICAL.replace(b'"model_version":3', b'"model_version":99999999999999999999'))
@example(raw=_CANONICAL.replace(b'"r"', b'"\\ud800"'))
def test_the_fast_path_accepts_only_what_the_contract_accepts_with_the_same_values(
    raw: bytes,
) -> None:
    _check(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents())
def test_valid_labels_in_the_form_the_stream_writes_take_the_fast_path(doc: dict[str, Any]) -> None:
    """Not a vacuous equivalence: what the stream app publishes is decided by msgspec alone."""
    _check(json.dumps(doc).encode())
    label = PersonaLabel.model_validate_json(_CANONICAL)
    written = label.model_copy(update={"event_id": uuid.uuid4()}).model_dump_json().encode()
    assert decode_label(written) is not None
    assert decode_label(_CANONICAL) is not None


@given(raws=st.lists(raw_labels(), max_size=6))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_batch_decodes_only_when_every_label_does(raws: list[bytes]) -> None:
    one_by_one = [decode_label(raw) for raw in raws]
    batch = decode_labels(raws)
    if any(item is None for item in one_by_one):
        assert batch is None
    else:
        assert batch == (
            [item[0] for item in one_by_one if item],
            [item[1] for item in one_by_one if item],
        )


_CANONICAL_INTS = {"persona_id": 1, "model_version": 3}


@pytest.mark.parametrize("name", ["persona_id", "model_version"])
@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64])
def test_a_label_pydantic_takes_beyond_int64_is_refused_with_its_reason(
    name: str, value: int
) -> None:
    spelled = f'"{name}":{_CANONICAL_INTS[name]},'.encode()
    raw = _CANONICAL.replace(spelled, f'"{name}":{value},'.encode())
    assert raw != _CANONICAL
    assert decode_label(raw) is None  # not the narrow form …
    model = PersonaLabel.model_validate_json(raw)  # … yet valid by the contract
    with pytest.raises(ValueError, match=f"{name} {value} is beyond a signed 64-bit integer"):
        from_model(model)
    edge = 2**63 - 1 if value > 0 else -(2**63)
    fits = _CANONICAL.replace(spelled, f'"{name}":{edge},'.encode())
    assert getattr(from_model(PersonaLabel.model_validate_json(fits)), name) == edge
