"""The label JSON consumers see parses to the same values as the encoder it replaced.

``_previous_documents`` is the per-event template ``label_batch`` used before it was written in
columns (git history of stream_app/labelling.py), kept here as the reference: hypothesis gives
batches of valid events in every form the contract allows (any UTC offset, fractions of seconds,
any respondent text, integers and negative zeros as features) and each label must parse to the
same JSON values — floats compared by their repr, so ``-0.0`` and the last digit count — with the
same keys in the same order, under the same Kafka key; and the rows must carry the same values.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personas.catalogue import FEATURES
from personas.model import CentroidModel
from personas.schemas import PersonaLabel, SurveyResponse, parse_survey_response
from stream_app.labelling import label_batch
from stream_app.records import RawRecord

NOW = datetime(2026, 12, 2, 12, 30, 15, 123456, tzinfo=UTC)


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _previous_documents(
    events: list[SurveyResponse], model: CentroidModel, labelled_at: datetime
) -> list[tuple[bytes, bytes]]:
    """The label encoder as it was (per-event f-string template)."""
    x = np.array([event.features() for event in events], dtype=np.float64)
    labels = model.label(x)
    quoted_names = [json.dumps(name) for name in model.persona_names]
    tail = f',"model_version":{model.version},"labelled_at":"{_iso(labelled_at)}"'
    out = []
    for i, event in enumerate(events):
        f = x.tolist()[i]
        index = labels.index.tolist()[i]
        document = (
            f'{{"schema_version":1,"event_id":"{event.event_id}",'
            f'"respondent_id":{json.dumps(event.respondent_id)},'
            f'"submitted_at":"{_iso(event.submitted_at)}",'
            f'"persona_id":{labels.persona_id.tolist()[i]},"persona_name":{quoted_names[index]},'
            f'"distance":{labels.distance.tolist()[i]!r},"margin":{labels.margin.tolist()[i]!r},'
            f'"is_outlier":{"true" if labels.is_outlier.tolist()[i] else "false"}{tail},'
            f'"x1":{f[0]!r},"x2":{f[1]!r},"x3":{f[2]!r},"x4":{f[3]!r},"x5":{f[4]!r},'
            f'"x6":{f[5]!r},"x7":{f[6]!r},"x8":{f[7]!r},"x9":{f[8]!r},"x10":{f[9]!r}}}'
        )
        out.append((event.respondent_id.encode(), document.encode()))
    return out


def _canonical(value: bytes) -> str:
    """The parsed document re-encoded: same values (floats by repr), same key order."""
    return json.dumps(json.loads(value), ensure_ascii=False)


_offsets = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
stamps = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(4000, 12, 30), timezones=_offsets
).map(lambda d: d.isoformat())
features = st.one_of(
    st.floats(-1000, 1000),
    st.integers(-1000, 1000),
    st.sampled_from([-0.0, 0.0, 5e-324, 1e-7, 999.9999999999999, 1000.0, -1000.0]),
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": str(draw(st.uuids())),
        "respondent_id": draw(st.text(min_size=1, max_size=64)),
        "submitted_at": draw(stamps),
        **{name: draw(features) for name in FEATURES},
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(events(), min_size=1, max_size=30), fraction=st.booleans())
def test_labels_parse_to_what_the_previous_encoder_wrote(
    batch: list[dict[str, Any]], fraction: bool, vendor_model: CentroidModel
) -> None:
    now = NOW if fraction else NOW.replace(microsecond=0)
    raws = [json.dumps(doc, ensure_ascii=False).encode() for doc in batch]
    records = [RawRecord(b"k", raw, "t", 0, i, 1) for i, raw in enumerate(raws)]
    model = CentroidModel.from_dict({**vendor_model.to_dict(), "version": 4})
    out = label_batch(records, model, now=now, future_margin=timedelta(days=10**6))
    expected = _previous_documents([parse_survey_response(r) for r in raws], model, now)
    assert [key for key, _ in out.labels] == [key for key, _ in expected]
    assert [_canonical(v) for _, v in out.labels] == [_canonical(v) for _, v in expected]
    for _, value in out.labels:  # and it is still the contract
        PersonaLabel.model_validate_json(value)
    for row, (_, value) in zip(out.rows, expected, strict=True):
        doc = json.loads(value)
        assert row[0] == uuid.UUID(doc["event_id"]) and row[1] == doc["respondent_id"]
        assert _iso(row[2]) == doc["submitted_at"] and row[-1] == now
        assert [repr(v) for v in row[3:13]] == [repr(doc[f]) for f in FEATURES]
        assert (row[13], row[14], repr(row[15]), repr(row[16]), row[17], row[18]) == (
            doc["persona_id"],
            doc["persona_name"],
            repr(doc["distance"]),
            repr(doc["margin"]),
            doc["is_outlier"],
            doc["model_version"],
        )
