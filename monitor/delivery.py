"""Each window's report and retrain command reach Kafka exactly once, through the drift_reports
outbox.

Kafka and PostgreSQL cannot commit together, so the order is: commit the window's row with what is
to be sent and where each alerts/retrain partition ended (``publish_marks``); send, waiting for
every acknowledgement; set ``published_at``. The row is locked (``FOR UPDATE``) while it is sent,
so two monitor instances never send one window twice. A monitor that died after committing the row
finds it unpublished at restart (or when the window closes again); one that died after sending but
before recording it is the case a plain retry would double, so a recovering delivery first reads
the topics from the marks to the end and sends only what is not there yet. Consumers of
drift-alerts see one report per window id; the trainer sees one command per episode.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from uuid import UUID

from personas.errors import ServiceUnavailable, Stopping
from personas.failpoints import failpoint
from personas.schemas import DriftReport, RetrainCommand
from personas.settings import Settings

__all__ = ["Delivery", "Marks"]

log = logging.getLogger(__name__)

#: topic -> partition (as text, the JSON key) -> the partition's end offset when the row was made
Marks = dict[str, dict[str, int]]

_TIMEOUT_S = 15.0


class Delivery:
    """Sends stored windows; owns a group-less consumer for end offsets and recovery reads."""

    def __init__(self, settings: Settings, producer: Any, stop: threading.Event) -> None:
        self.settings = settings
        self.producer = producer
        self.stop = stop
        self._reader: Any = None

    @property
    def topics(self) -> tuple[str, str]:
        return self.settings.topics.alerts, self.settings.topics.retrain

    def reader(self) -> Any:
        from confluent_kafka import Consumer

        from personas.kafka import consumer_config

        if self._reader is None:
            # end offsets only, never subscribe or commit: the group is named (ACLs), never joined
            self._reader = Consumer(consumer_config(self.settings, "persona-monitor-outbox"))
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def marks(self) -> Marks:
        """Where each partition of the alerts and retrain topics ends now."""
        return {
            topic: {str(p): high for p, (_, high) in self._ends(topic).items()}
            for topic in self.topics
        }

    def _ends(self, topic: str) -> dict[int, tuple[int, int]]:
        from confluent_kafka import TopicPartition

        reader = self.reader()
        found = reader.list_topics(topic, timeout=_TIMEOUT_S).topics.get(topic)
        if found is None or found.error is not None:
            reason = "no such topic" if found is None else str(found.error)
            raise ServiceUnavailable("Kafka", self.settings.kafka_bootstrap, f"{topic}: {reason}")
        return {
            p: reader.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT_S)
            for p in sorted(found.partitions)
        }

    def deliver(self, conn: Any, window_id: str, *, recovering: bool) -> tuple[bool, bool]:
        """Send what the window's row holds unless it is published: (report sent, command sent).

        ``recovering``: an earlier attempt may have sent part of it, so read the topics first.
        """
        conn.rollback()
        with conn.transaction():
            row = conn.execute(
                "SELECT report, retrain_command, publish_marks, published_at FROM drift_reports"
                " WHERE window_id = %s FOR UPDATE",
                (window_id,),
            ).fetchone()
            if row is None or row[3] is not None:
                return False, False
            report = DriftReport.model_validate(row[0])
            command = None if row[1] is None else RetrainCommand.model_validate(row[1])
            report_there = command_there = False
            if recovering:
                report_there, command_there = self._already_sent(
                    row[2] or {}, window_id, None if command is None else command.command_id
                )
            outgoing: list[tuple[str, bytes, bytes]] = []
            if not report_there:
                outgoing.append(
                    (self.topics[0], window_id.encode(), report.model_dump_json().encode())
                )
            if command is not None and not command_there:
                key = self.settings.model_name.encode()
                outgoing.append((self.topics[1], key, command.model_dump_json().encode()))
            self._send(outgoing)
            failpoint("monitor.after_publish")
            if command is not None and not command_there:
                failpoint("monitor.after_retrain_command")
            conn.execute(
                "UPDATE drift_reports SET published_at = now() WHERE window_id = %s", (window_id,)
            )
        if recovering and (report_there or command_there):
            log.info(
                "window %s: found already on Kafka after a restart (report %s, command %s); "
                "not sent again",
                window_id,
                "yes" if report_there else "no",
                "yes" if command_there else "-" if command is None else "no",
            )
        return not report_there, command is not None and not command_there

    def _send(self, outgoing: list[tuple[str, bytes, bytes]]) -> None:
        """Produce and wait for every acknowledgement: a message never stays in flight behind a
        later attempt (which would then send it twice)."""
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        for topic, key, value in outgoing:
            self.producer.produce(topic, key=key, value=value, on_delivery=delivered)
        while self.producer.flush(_TIMEOUT_S):
            if self.stop.is_set():
                # the row stays unpublished; the next start finishes the delivery
                raise Stopping("drift report still awaiting Kafka's acknowledgement")
            log.warning("Kafka has not acknowledged a drift report yet; still waiting")
        if errors:
            raise ServiceUnavailable("Kafka", self.settings.kafka_bootstrap, errors[0])

    def _already_sent(
        self, marks: Marks, window_id: str, command_id: UUID | None
    ) -> tuple[bool, bool]:
        """Whether the report (key = window id) and the command (by id) are on their topics past
        the marks taken before the first attempt."""
        from personas.kafka import read_to_end

        alerts, retrain = self.topics

        def after_marks(topic: str) -> list[Any]:
            start = {int(p): offset for p, offset in marks.get(topic, {}).items()}
            return read_to_end(self.settings, topic, _TIMEOUT_S, start)

        report_there = any(m.key() == window_id.encode() for m in after_marks(alerts))
        command_there = command_id is not None and any(
            _command_id(m.value() or b"") == str(command_id) for m in after_marks(retrain)
        )
        return report_there, command_there


def _command_id(value: bytes) -> str | None:
    try:
        document = json.loads(value)
    except ValueError:
        return None
    return str(document.get("command_id")) if isinstance(document, dict) else None
