"""The same event_id twice: with the same payload (a re-delivery, a producer retry) it is one row
and nothing to say; with another payload (a producer reusing ids) it is still one row — the first
label kept — and the conflict is counted and logged with the id."""

from __future__ import annotations

import json
from collections.abc import Callable

from fault_tools import wait_for
from loop_tools import label_rows
from stream_helpers import Worker, make_events, metric, produce

from personas import db
from personas.model import CentroidModel
from personas.settings import Settings


def _x1(settings: Settings, event_id: str) -> float:
    with db.connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT x1 FROM persona_labels WHERE event_id = %s", (event_id,)
        ).fetchone()
    assert row is not None
    return float(row[0])


def test_a_reused_event_id_keeps_the_first_label_and_is_counted(
    isolated_settings: Settings, workers: Callable[..., Worker], vendor_model: CentroidModel
) -> None:
    s = isolated_settings
    first, second, *rest = make_events(vendor_model, 12, seed=41)
    changed = {**first, "x1": first["x1"] + 1.0}
    twin = {**second, "x2": second["x2"] - 1.0}

    def message(e: dict[str, object]) -> tuple[bytes, bytes]:
        return str(e["respondent_id"]).encode(), json.dumps(e).encode()

    worker = workers("--batch-size", "50", "--batch-timeout", "0.2")
    worker.wait_ready()
    produce(s, s.topics.responses, [message(first), *map(message, rest)])
    wait_for(lambda: label_rows(s)[0] == 1 + len(rest), 60, "the first events")
    # Again: `first` identical (a re-delivery) and changed; `second` and its twin in one batch.
    produce(
        s, s.topics.responses, [message(first), message(changed), message(second), message(twin)]
    )
    wait_for(
        lambda: metric(worker.metrics(), "persona_stream_event_id_conflicts_total") == 2,
        60,
        "both conflicts counted",
    )
    assert label_rows(s) == (len(rest) + 2, len(rest) + 2)
    assert _x1(s, str(first["event_id"])) == first["x1"]  # the first label is kept
    text = worker.metrics()
    assert metric(text, "persona_stream_rows_duplicate_total") == 3  # first twice, the twin
    worker.stop()
    log = worker.output()
    assert "already stored with another payload" in log and str(first["event_id"]) in log
