"""stream_app.pg_copy writes exactly the bytes psycopg's own binary ``write_row`` writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.adapt import Transformer
from psycopg.pq import Format

from personas.catalogue import FEATURES
from personas.model import CentroidModel
from stream_app.labelling import LABEL_COLUMNS, label_batch
from stream_app.pg_copy import COPY_COLUMNS, binary_copy
from stream_app.records import RawRecord

_TYPES = {
    "event_id": "uuid",
    "respondent_id": "text",
    "submitted_at": "timestamptz",
    **dict.fromkeys(FEATURES, "float8"),
    "persona_id": "int4",
    "persona_name": "text",
    "distance": "float8",
    "margin": "float8",
    "is_outlier": "bool",
    "model_version": "int4",
    "labelled_at": "timestamptz",
}


def _psycopg_payload(rows: list[tuple[Any, ...]]) -> bytes:
    """What ``cursor.copy(... FORMAT BINARY)`` + ``set_types`` + ``write_row`` would send."""
    from psycopg._copy_base import BinaryFormatter

    tx = Transformer()
    tx.set_dumper_types(
        [psycopg.adapters.types[_TYPES[c]].oid for c in COPY_COLUMNS], Format.BINARY
    )
    formatter = BinaryFormatter(tx)
    order = [LABEL_COLUMNS.index(c) for c in COPY_COLUMNS]
    data = bytearray()
    for row in rows:
        data += formatter.write_row([row[i] for i in order])
    data += formatter.end()
    return bytes(data)


_offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@st.composite
def events(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {
        "event_id": str(draw(st.uuids())),
        "respondent_id": draw(st.text(min_size=1, max_size=64)),
        "submitted_at": draw(
            st.datetimes(datetime(1, 1, 2), datetime(4000, 1, 1), timezones=_offsets)
        ).isoformat(),
        **{f: draw(st.floats(-1000, 1000)) for f in FEATURES},
    }
    return json.dumps(doc).encode()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raws=st.lists(events(), max_size=20), micro=st.integers(0, 999_999))
def test_payload_is_byte_for_byte_what_psycopg_writes(
    raws: list[bytes], micro: int, vendor_model: CentroidModel
) -> None:
    now = datetime(2026, 12, 2, 13, 0, tzinfo=UTC).replace(microsecond=micro)
    records = [RawRecord(b"k", raw, "t", 0, i) for i, raw in enumerate(raws)]
    out = label_batch(records, vendor_model, now=now, future_margin=timedelta(days=10**6))
    assert len(out.rows) == len(raws)
    assert binary_copy(out.rows) == _psycopg_payload(list(out.rows))


def test_the_columns_are_the_table_columns() -> None:
    assert sorted(COPY_COLUMNS) == sorted(LABEL_COLUMNS)
    assert COPY_COLUMNS[-2:] == ("persona_name", "respondent_id")  # variable width last


def test_an_empty_batch_is_header_and_trailer(vendor_model: CentroidModel) -> None:
    out = label_batch([], vendor_model)
    assert binary_copy(out.rows) == _psycopg_payload([])
