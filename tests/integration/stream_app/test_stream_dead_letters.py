"""A value the input topic accepts can always be dead-lettered, and a dead letter the broker
refuses never stops the stream (found by hand: a 900 KB value crashed the worker at every restart,
because its base64-in-JSON envelope was larger than the broker accepts).

The dead letter is the record's own key and value bytes with the reason in headers (the Kafka
Connect / KIP-1034 convention); the DLQ topic has room for the headers. Both engines."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
from fault_tools import wait_for
from loop_tools import label_rows
from stream_helpers import Worker, make_events, metric, read_topic

from personas.dead_letters import decode
from personas.kafka import BROKER_RECORD_LIMIT, admin_config, producer_config
from personas.model import CentroidModel
from personas.settings import Settings


def _produce_raw(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    """Uncompressed, with a request size large enough for a record at the broker's limit."""
    from confluent_kafka import Producer

    producer = Producer(
        producer_config(
            settings,
            **{"compression.type": "none", "message.max.bytes": 4 * BROKER_RECORD_LIMIT},
        )
    )
    errors: list[str] = []
    for key, value in messages:
        producer.produce(
            topic, value, key, on_delivery=lambda e, _m: errors.append(str(e)) if e else None
        )
        producer.flush(60)
    assert not errors, errors


def _largest_accepted(settings: Settings, topic: str) -> bytes:
    """The largest random (incompressible, not JSON) value the topic accepts, within 64 bytes."""
    from confluent_kafka import KafkaError, Producer

    # Not idempotent: a refused record must not fence the probing producer.
    producer = Producer(
        producer_config(
            settings,
            **{
                "compression.type": "none",
                "message.max.bytes": 4 * BROKER_RECORD_LIMIT,
                "enable.idempotence": False,
            },
        )
    )
    size = BROKER_RECORD_LIMIT
    while size > BROKER_RECORD_LIMIT - 4096:
        value = b"\xff" + os.urandom(size - 1)
        outcome: list[object] = []
        producer.produce(topic, value, b"probe", on_delivery=lambda e, _m, o=outcome: o.append(e))
        producer.flush(60)
        error = outcome[0]
        if error is None:
            return value
        assert isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE
        size -= 64
    raise AssertionError("the topic accepts no value near the broker's limit")


@pytest.mark.parametrize("engine", ["batch", "agent"])
def test_a_value_at_the_brokers_limit_is_dead_lettered_whole(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
    engine: str,
) -> None:
    s = isolated_settings
    huge = _largest_accepted(s, s.topics.responses)  # the probe itself is an invalid event
    events = make_events(vendor_model, 50, seed=31)
    good = [(e["respondent_id"].encode(), json.dumps(e).encode()) for e in events]
    _produce_raw(s, s.topics.responses, [(b"huge", huge), *good])

    worker = workers("--engine", engine, "--batch-size", "16")
    worker.wait_ready()
    wait_for(lambda: label_rows(s)[0] == len(events), 90, "the events after the huge one")
    letters = read_topic(s, s.topics.dlq, expect=2, timeout=60)
    assert len(letters) == 2
    for message in letters:
        assert message.value() == huge  # the original bytes, unchanged
        letter = decode(message.key(), message.value(), message.headers())
        assert letter.error_kind == "oversized"
        assert letter.source_topic == s.topics.responses
    assert {m.key() for m in letters} == {b"probe", b"huge"}
    assert metric(worker.metrics(), "persona_stream_dead_letters_dropped_total") == 0
    assert worker.alive()


@pytest.mark.parametrize("engine", ["batch", "agent"])
def test_a_dead_letter_the_broker_refuses_never_stops_the_stream(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
    engine: str,
) -> None:
    """The DLQ topic here accepts at most 2,000 bytes: a 5 KB invalid event's dead letter is
    refused for good. The worker gives it up (logged, counted) and labels what follows; a
    restarted worker does not meet it again (its offset was committed)."""
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

    s = isolated_settings
    admin = AdminClient(admin_config(s))
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        s.topics.dlq,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)

    events = make_events(vendor_model, 40, seed=32)
    good = [(e["respondent_id"].encode(), json.dumps(e).encode()) for e in events]
    bad = (b"too-big-for-the-dlq", b"not json " + os.urandom(5000))  # incompressible
    _produce_raw(s, s.topics.responses, [good[0], bad, *good[1:]])

    worker = workers("--engine", engine, "--batch-size", "8")
    worker.wait_ready()
    wait_for(lambda: label_rows(s)[0] == len(events), 90, "the events around the refused one")
    wait_for(
        lambda: metric(worker.metrics(), "persona_stream_dead_letters_dropped_total") == 1,
        30,
        "the dropped dead letter to be counted",
    )
    assert worker.alive()
    assert worker.stop() == 0
    log = worker.output()
    assert "could not be written to" in log and f"{s.topics.responses}[" in log

    # A successor starts from the committed offsets: the refused record is behind it.
    successor = workers("--engine", engine, state="successor")
    successor.wait_ready()
    more = make_events(vendor_model, 5, seed=33)
    _produce_raw(
        s, s.topics.responses, [(e["respondent_id"].encode(), json.dumps(e).encode()) for e in more]
    )
    wait_for(lambda: label_rows(s)[0] == len(events) + len(more), 90, "the successor's events")
    assert metric(successor.metrics(), "persona_stream_dead_letters_dropped_total") == 0


def test_an_event_dated_in_the_future_is_dead_lettered(
    isolated_settings: Settings, workers: Callable[..., Worker], vendor_model: CentroidModel
) -> None:
    s = isolated_settings
    events = make_events(vendor_model, 10, seed=34)
    future = {**events[0], "event_id": "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f"}
    future["submitted_at"] = "2031-01-01T00:00:00Z"
    messages = [(e["respondent_id"].encode(), json.dumps(e).encode()) for e in events]
    _produce_raw(s, s.topics.responses, [*messages, (b"typo", json.dumps(future).encode())])
    worker = workers("--batch-size", "8", PERSONA_STREAM_FUTURE_MARGIN_S="7200")
    worker.wait_ready()
    wait_for(lambda: label_rows(s)[0] == len(events), 90, "the present events")
    letters = read_topic(s, s.topics.dlq, expect=1, timeout=60)
    letter = decode(letters[0].key(), letters[0].value(), letters[0].headers())
    assert letter.error_kind == "future_timestamp"
    assert "more than 7200 s after" in letter.reason
    text = worker.metrics()
    assert metric(text, "persona_stream_events_dead_lettered_total", kind="future_timestamp") == 1
