"""KafkaOutput against a scripted producer: a dead letter the broker refuses for good is given up
(reported once) instead of re-sent forever; everything else is re-sent until acknowledged."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from personas.settings import Settings
from stream_app.output import KafkaOutput, OutputFailed, _permanent


class Msg:
    def __init__(self, topic: str, headers: Any) -> None:
        self._topic, self._headers = topic, headers

    def topic(self) -> str:
        return self._topic

    def headers(self) -> Any:
        return self._headers


class ScriptedProducer:
    """Acknowledges every message except those whose topic is in ``refuse`` (delivery error) or
    ``refuse_locally`` (raised by produce, as librdkafka does for an oversized message)."""

    def __init__(self, refuse: dict[str, KafkaError], refuse_locally: dict[str, KafkaError]):
        self.refuse, self.refuse_locally = refuse, refuse_locally
        self.pending: list[tuple[Any, Any, Msg]] = []
        self.sent: list[tuple[str, Any]] = []

    def produce(self, topic: str, value: Any, key: Any, headers: Any, on_delivery: Any) -> None:
        if topic in self.refuse_locally:
            raise KafkaException(self.refuse_locally[topic])
        self.pending.append((on_delivery, self.refuse.get(topic), Msg(topic, headers)))
        self.sent.append((topic, value))

    def flush(self, _timeout: float) -> int:
        for callback, error, msg in self.pending:
            callback(error, msg)
        self.pending = []
        return 0

    def poll(self, _timeout: float) -> int:
        return 0

    def purge(self) -> None:
        self.pending = []


def _output(producer: ScriptedProducer, dropped: list[tuple[str, Any, str]]) -> KafkaOutput:
    output = KafkaOutput(
        Settings(_env_file=None),
        threading.Event(),
        droppable=frozenset({"dlq"}),
        on_dropped=lambda topic, headers, why: dropped.append((topic, headers, why)),
    )
    output._producer = producer
    return output


@pytest.mark.parametrize("local", [False, True])
def test_a_dead_letter_refused_for_good_is_given_up(local: bool) -> None:
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    refusals = ({}, {"dlq": too_large}) if local else ({"dlq": too_large}, {})
    producer = ScriptedProducer(*refusals)
    dropped: list[tuple[str, Any, str]] = []
    output = _output(producer, dropped)
    output.produce("labels", [(b"k", b"label")])
    output.produce("dlq", [(b"k", b"bad", [("persona.errors.kind", b"oversized")])])
    output.confirm()  # does not raise: the refused dead letter does not hold the batch
    assert [(t, h) for t, h, _ in dropped] == [("dlq", [("persona.errors.kind", b"oversized")])]
    assert "too large" in dropped[0][2].lower()
    assert ("labels", b"label") in producer.sent


def test_a_refused_label_is_never_given_up() -> None:
    producer = ScriptedProducer({"labels": KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)}, {})
    dropped: list[tuple[str, Any, str]] = []
    output = _output(producer, dropped)
    output.produce("labels", [(b"k", b"label")])
    with pytest.raises(OutputFailed):
        output.confirm()
    assert dropped == []


def test_a_transient_dlq_failure_is_re_sent_not_given_up() -> None:
    producer = ScriptedProducer({"dlq": KafkaError(KafkaError._MSG_TIMED_OUT)}, {})
    dropped: list[tuple[str, Any, str]] = []
    output = _output(producer, dropped)
    output.produce("dlq", [(b"k", b"bad", [])])
    with pytest.raises(OutputFailed):
        output.confirm()
    assert dropped == []


def test_which_refusals_are_permanent() -> None:
    for code in (
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.INVALID_RECORD,
    ):
        assert _permanent(KafkaError(code))
    for code in (
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    ):
        assert not _permanent(KafkaError(code))
