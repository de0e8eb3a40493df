"""Test doubles for the champion follower's unit tests (no MLflow, no Kafka)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from personas.errors import ServiceUnavailable
from personas.model import CentroidModel
from personas.settings import Settings


class Registry:
    """Versions in memory; a stored exception is what loading that version raises; ``fault``
    (an exception) is what every call raises while set."""

    def __init__(self, models: dict[int, CentroidModel | Exception] | None = None) -> None:
        self.models: dict[int, CentroidModel | Exception] = models or {}
        self.champion: int | None = None
        self.fault: Exception | None = None
        self.loads: list[int] = []

    def champion_version(self, settings: Settings) -> int | None:
        if self.fault is not None:
            raise self.fault
        return self.champion

    def load_version(self, settings: Settings, version: int) -> CentroidModel:
        if self.fault is not None:
            raise self.fault
        self.loads.append(version)
        found = self.models[version]
        if isinstance(found, Exception):
            raise found
        return found


DOWN = ServiceUnavailable("MLflow", "http://fake", "connection refused")


def version_of(model: CentroidModel, version: int, **changes: Any) -> CentroidModel:
    return CentroidModel.from_dict({**model.to_dict(), "version": version, **changes})


class Message:
    def __init__(self, value: bytes) -> None:
        self._value = value

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value


class Partition:
    pass


class Metadata:
    def __init__(self, topic: str, partitions: int) -> None:
        self.topics = {
            topic: type("T", (), {"partitions": {p: Partition() for p in range(partitions)}})()
        }


class Consumer:
    """A scripted confluent-kafka consumer: ``messages`` are returned by ``poll`` one by one, then
    ``when_drained`` is called (a test stops the listener there)."""

    def __init__(
        self,
        topic: str,
        *,
        partitions: int = 2,
        end: int = 7,
        messages: list[bytes] | None = None,
        when_drained: Callable[[], None] = lambda: None,
        list_topics: Callable[[], Any] | None = None,
    ) -> None:
        self.topic = topic
        self.partitions = partitions
        self.end = end
        self.messages = list(messages or [])
        self.when_drained = when_drained
        self._list_topics = list_topics
        self.assigned: list[tuple[int, int]] = []
        self.closed = False

    def __call__(self, config: dict[str, Any]) -> Consumer:  # stands in for the class
        self.config = config
        return self

    def list_topics(self, topic: str, timeout: float) -> Any:
        if self._list_topics is not None:
            return self._list_topics()
        return Metadata(topic, self.partitions)

    def get_watermark_offsets(self, tp: Any, timeout: float, cached: bool) -> tuple[int, int]:
        return 0, self.end

    def assign(self, tps: list[Any]) -> None:
        self.assigned = [(tp.partition, tp.offset) for tp in tps]

    def poll(self, timeout: float) -> Message | None:
        if self.messages:
            return Message(self.messages.pop(0))
        self.when_drained()
        time.sleep(min(timeout, 0.01))  # an idle broker: no busy loop while a test waits
        return None

    def close(self) -> None:
        self.closed = True
