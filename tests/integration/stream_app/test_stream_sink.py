"""The PostgreSQL sink against the real server: a new batch goes by one COPY straight into
persona_labels; a batch holding an event_id already stored falls back to the idempotent way
(stage + ON CONFLICT DO NOTHING) without losing its new rows, and the next batches stay on the
idempotent way until one is all new."""

from __future__ import annotations

import json
import threading

from stream_helpers import make_events

from personas import db
from personas.model import CentroidModel
from personas.settings import Settings
from stream_app.labelling import LabelRows, label_batch
from stream_app.records import RawRecord
from stream_app.sink import PgSink


def _rows(model: CentroidModel, events: list[dict[str, object]]) -> LabelRows:
    records = [
        RawRecord(None, json.dumps(e).encode(), "responses", 0, offset)
        for offset, e in enumerate(events)
    ]
    out = label_batch(records, model)
    assert not out.dead_letters, out.dead_letters
    return out.rows


def _stored(settings: Settings) -> set[str]:
    with db.connect(settings, autocommit=True) as conn:
        return {str(r[0]) for r in conn.execute("SELECT event_id FROM persona_labels")}


def test_new_batches_are_copied_straight_in_and_a_redelivery_falls_back_without_loss(
    isolated_settings: Settings, vendor_model: CentroidModel
) -> None:
    s = isolated_settings
    events = make_events(vendor_model, 300, seed=5)
    first, second, third = events[:100], events[100:200], events[200:]
    sink = PgSink(s, threading.Event())
    try:
        sink.warm_up()
        assert sink.write(_rows(vendor_model, first)) == 100
        assert (sink.direct_writes, sink.staged_writes) == (1, 0)

        # Half re-delivered, half new: the direct COPY fails on the key, the batch is staged.
        mixed = first[50:] + second
        assert sink.write(_rows(vendor_model, mixed)) == 100
        assert (sink.direct_writes, sink.staged_writes) == (1, 1)
        assert sink.last_conflicts == []  # same payloads: re-deliveries, not conflicts
        assert not sink.direct  # the next batch goes the idempotent way

        # Entirely re-delivered: staged again, nothing new, still on the idempotent way.
        assert sink.write(_rows(vendor_model, second)) == 0
        assert (sink.direct_writes, sink.staged_writes) == (1, 2) and not sink.direct

        # All new: staged once more (it could not know), then back to the direct COPY.
        assert sink.write(_rows(vendor_model, third[:50])) == 50
        assert sink.direct
        assert sink.write(_rows(vendor_model, third[50:])) == 50
        assert (sink.direct_writes, sink.staged_writes) == (2, 3)
    finally:
        sink.close()
    assert _stored(s) == {str(e["event_id"]) for e in events}


def test_a_reused_id_with_another_payload_is_named_after_the_fallback(
    isolated_settings: Settings, vendor_model: CentroidModel
) -> None:
    s = isolated_settings
    events = make_events(vendor_model, 20, seed=9)
    changed = {**events[3], "x1": float(events[3]["x1"]) + 1.0}  # type: ignore[arg-type]
    sink = PgSink(s, threading.Event())
    try:
        assert sink.write(_rows(vendor_model, events)) == 20
        assert sink.write(_rows(vendor_model, [changed])) == 0
        assert sink.last_conflicts == [str(events[3]["event_id"])]
    finally:
        sink.close()
