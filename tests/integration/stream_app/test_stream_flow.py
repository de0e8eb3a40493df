"""A generated stream goes through a real worker: labels on Kafka, rows in PostgreSQL, DLQ."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from fault_tools import wait_for
from loop_tools import label_rows
from stream_helpers import (
    Worker,
    make_events,
    metric,
    produce,
    produce_events,
    read_topic,
    register_version,
)

from personas import db
from personas.catalogue import FEATURES
from personas.dead_letters import decode
from personas.model import CentroidModel
from personas.schemas import PersonaLabel
from personas.settings import Settings

N = 3000


def _brute_force(model: CentroidModel, x: np.ndarray) -> np.ndarray:
    distances = np.linalg.norm(x[:, None, :] - model.centroids[None, :, :], axis=2)
    return np.asarray(model.persona_ids)[distances.argmin(axis=1)]


@pytest.mark.parametrize("engine", ["batch", "agent"])
def test_generated_stream_is_labelled_once_in_postgres_and_on_kafka(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
    engine: str,
) -> None:
    s = isolated_settings
    # A registered champion that differs from the vendor centroids, so the labels prove which
    # model made them.
    shifted = CentroidModel.from_dict(
        {**vendor_model.to_dict(), "centroids": (vendor_model.centroids + 1.5).tolist()}
    )
    version = register_version(s, shifted.to_dict())
    worker = workers("--engine", engine, "--batch-size", "500")
    state = worker.wait_ready()
    assert state["engine"] == engine
    assert state["model_version"] == version and state["partitions"] == [0, 1, 2, 3]
    assert "registry" in state["model_source"]

    events = make_events(vendor_model, N, std=3.0)
    produce_events(s, events)
    messages = read_topic(s, s.topics.labels, expect=N, timeout=60, idle=1.0)
    labels = [PersonaLabel.model_validate_json(m.value()) for m in messages]

    assert len(labels) >= N
    by_id = {str(label.event_id): label for label in labels}
    assert set(by_id) == {e["event_id"] for e in events}
    assert all(m.key() == json.loads(m.value())["respondent_id"].encode() for m in messages)
    assert {label.model_version for label in labels} == {version}

    x = np.array([[e[f] for f in FEATURES] for e in events])
    expected = _brute_force(shifted, x)
    got = np.array([by_id[e["event_id"]].persona_id for e in events])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose([by_id[e["event_id"]].features() for e in events], x)

    assert label_rows(s) == (N, N)
    with db.connect(s, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT event_id::text, persona_id, model_version, respondent_id FROM persona_labels"
        ).fetchall()
    by_row = {r[0]: r for r in rows}
    for e, persona in zip(events, expected, strict=True):
        assert by_row[e["event_id"]][1:] == (persona, version, e["respondent_id"])

    text = worker.metrics()
    assert metric(text, "persona_stream_events_in_total") == N
    assert metric(text, "persona_stream_events_labelled_total") == N
    assert metric(text, "persona_stream_rows_inserted_total") == N
    assert metric(text, "persona_stream_model_version") == version
    assert metric(text, "persona_stream_event_to_label_seconds_count") == N

    def caught_up() -> bool:  # the lag gauge is refreshed every 5 s, per assigned partition
        text = worker.metrics()
        return all(f'persona_stream_consumer_lag{{partition="{p}"}} 0.0' in text for p in range(4))

    wait_for(caught_up, 15, "consumer lag 0 on every partition")
    assert worker.stop() == 0
    assert "persona stream worker stopped" in worker.output()


def _bad_corpus(good: dict[str, object]) -> list[tuple[bytes, bytes | None, str]]:
    """(key, value, expected error kind) for each kind of broken input."""
    doc = json.dumps
    return [
        (b"b-notjson", b"this is not json", "not_json"),
        (b"b-truncated", doc(good).encode()[:-5], "not_json"),
        (b"b-binary", b"\x00\xff\xfe\x01", "not_json"),
        (b"b-empty", b"", "empty"),
        (b"b-none", None, "empty"),
        (b"b-array", b"[1, 2, 3]", "not_object"),
        (b"b-missing", doc({k: v for k, v in good.items() if k != "x7"}).encode(), "invalid_field"),
        (b"b-string", doc({**good, "x2": "3.5"}).encode(), "invalid_field"),
        (b"b-nan", doc({**good, "x1": float("nan")}).encode(), "non_finite"),
        (b"b-inf", doc({**good, "x9": float("inf")}).encode(), "non_finite"),
        (b"b-range", doc({**good, "x3": 5000.0}).encode(), "invalid_field"),
        (b"b-version", doc({**good, "schema_version": 2}).encode(), "unknown_schema_version"),
        (b"b-extra", doc({**good, "x11": 1.0}).encode(), "invalid_field"),
        (b"b-uuid", doc({**good, "event_id": "nope"}).encode(), "invalid_field"),
        (
            b"b-naive",
            doc({**good, "submitted_at": "2026-11-26T10:00:00"}).encode(),
            "invalid_field",
        ),
        (b"b-big", doc({**good, "pad": "x" * 20_000}).encode(), "oversized"),
    ]


def test_bad_events_go_to_the_dlq_and_good_ones_still_flow(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    events = make_events(vendor_model, 400, seed=11)
    bad = _bad_corpus(make_events(vendor_model, 1, seed=12)[0])
    messages: list[tuple[bytes | None, bytes | None]] = []
    for i, e in enumerate(events):  # bad events scattered between good ones
        messages.append((e["respondent_id"].encode(), json.dumps(e).encode()))
        if i % 25 == 0 and i // 25 < len(bad):
            key, value, _ = bad[i // 25]
            messages.append((key, value))
    produce(s, s.topics.responses, messages)

    worker = workers("--batch-size", "64")
    assert worker.wait_ready()["model_version"] == 0  # nothing registered: vendor centroids
    labels = read_topic(s, s.topics.labels, expect=len(events), timeout=60)
    letters_raw = read_topic(s, s.topics.dlq, expect=len(bad), timeout=30, idle=1.0)

    assert {json.loads(m.value())["event_id"] for m in labels} == {e["event_id"] for e in events}
    assert label_rows(s) == (len(events), len(events))
    assert len(letters_raw) == len(bad)
    letters = {m.key(): decode(m.key(), m.value(), m.headers()) for m in letters_raw}
    values = {m.key(): m.value() for m in letters_raw}
    for key, value, kind in bad:
        letter = letters[key]
        assert values[key] == value  # the original bytes, unchanged (KIP-1034)
        assert letter.error_kind == kind, (key, letter.reason)
        assert letter.reason
        assert base64.b64decode(letter.original_value_b64) == (value or b"")
        assert letter.source_topic == s.topics.responses
        assert letter.original_key == key.decode()
    # The source coordinates point at the very record that was rejected.
    coordinates = {(letter.source_partition, letter.source_offset) for letter in letters.values()}
    assert len(coordinates) == len(bad)
    text = worker.metrics()
    expected_kinds = Counter(kind for _, _, kind in bad)
    for kind, count in expected_kinds.items():
        assert metric(text, "persona_stream_events_dead_lettered_total", kind=kind) == count
    assert metric(text, "persona_stream_events_in_total") == len(events) + len(bad)
