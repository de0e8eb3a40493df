"""The monitor's consumer loop, step by step, on fake Kafka messages: what it commits and when.

The clients are fakes (no Kafka here); the integration tests run the same class against a broker.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from monitor.service import MonitorService
from monitor.settings import MonitorSettings
from monitor.windows import ClosedWindow
from personas.schemas import PersonaLabel
from personas.settings import Settings

T0 = datetime(2025, 2, 3, tzinfo=UTC)  # a Monday: the start of a 7d window
EOF_CODE = -191  # KafkaError._PARTITION_EOF


@dataclass
class FakeError:
    value: int

    def code(self) -> int:
        return self.value


@dataclass
class FakeMessage:
    topic_name: str
    partition_no: int
    offset_no: int
    payload: bytes | None = None
    error_code: int | None = None
    timestamp_ms: int = -1

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_no

    def offset(self) -> int:
        return self.offset_no

    def value(self) -> bytes | None:
        return self.payload

    def error(self) -> FakeError | None:
        return None if self.error_code is None else FakeError(self.error_code)

    def timestamp(self) -> tuple[int, int]:
        return (1, self.timestamp_ms)


@dataclass
class FakeConsumer:
    batches: list[list[FakeMessage]] = field(default_factory=list)
    commits: list[dict[tuple[str, int], int]] = field(default_factory=list)

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        return self.batches.pop(0) if self.batches else []

    def commit(self, *, offsets: list[Any], asynchronous: bool) -> None:
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})


@dataclass
class FakeExecutor:
    """The judge thread, held still: each window's future is settled by the test."""

    submitted: list[tuple[ClosedWindow, Future[Any]]] = field(default_factory=list)

    def submit(self, fn: Any, window: ClosedWindow) -> Future[Any]:
        future: Future[Any] = Future()
        self.submitted.append((window, future))
        return future


class FakeProcessor:
    """Only its ``process`` is handed to the (fake) judge thread; it is never called here."""

    def process(self, window: ClosedWindow) -> None:
        raise AssertionError("the fake executor never runs it")


def label(at: datetime, offset: int, partition: int = 0) -> FakeMessage:
    document = PersonaLabel(
        event_id=uuid4(),
        respondent_id="r",
        submitted_at=at,
        persona_id=0,
        persona_name="p",
        distance=1.0,
        margin=1.0,
        is_outlier=False,
        model_version=1,
        labelled_at=at,
        **{f"x{i}": 0.0 for i in range(1, 11)},
    )
    return FakeMessage("labels", partition, offset, document.model_dump_json().encode())


@pytest.fixture
def service() -> MonitorService:
    return _service()


def _service(*, responses: bool = False) -> MonitorService:
    settings = Settings(_env_file=None)
    settings = settings.model_copy(
        update={
            "topics": settings.topics.model_copy(
                update={"labels": "labels", "responses": "responses"}
            )
        }
    )
    ms = MonitorSettings(_env_file=None, consume_responses=responses, allowed_lateness="1h")
    svc = MonitorService(settings, ms, threading.Event())
    svc.consumer = FakeConsumer()
    svc.executor = FakeExecutor()  # type: ignore[assignment]
    svc.processor = FakeProcessor()  # type: ignore[assignment]
    svc._eof_code = EOF_CODE
    return svc


def feed(svc: MonitorService, *messages: FakeMessage) -> None:
    for msg in messages:
        svc.route(msg)


def test_a_window_holds_its_offsets_until_the_judge_thread_has_published_it(
    service: MonitorService,
) -> None:
    feed(service, *(label(T0 + timedelta(hours=h), offset=h) for h in range(3)))
    feed(service, label(T0 + timedelta(days=8), offset=3))  # moves the watermark past week 1
    service.close_windows()
    executor: FakeExecutor = service.executor  # type: ignore[assignment]
    ((window, future),) = executor.submitted
    assert window.event_count == 3 and window.offsets == {("labels", 0): 0}
    service.collect()
    service.commit()
    assert service.consumer.commits == [{("labels", 0): 0}]  # held by the window being judged
    future.set_result(None)
    service.collect()
    service.commit()
    assert service.consumer.commits[-1] == {("labels", 0): 3}  # held by the open second week
    assert service.stats.windows == 1 and service.stats.labels == 4


def test_a_failed_window_is_raised_and_keeps_holding(service: MonitorService) -> None:
    feed(service, label(T0, offset=0), label(T0 + timedelta(days=8), offset=1))
    service.close_windows()
    executor: FakeExecutor = service.executor  # type: ignore[assignment]
    executor.submitted[0][1].set_exception(RuntimeError("bug"))
    with pytest.raises(RuntimeError, match="bug"):
        service.collect()
    assert service.checkpoint.committable() == {("labels", 0): 0}  # never published: re-read it


def test_invalid_late_and_future_labels_are_counted_and_do_not_hold(
    service: MonitorService,
) -> None:
    feed(
        service,
        FakeMessage("labels", 0, 0, b"not json"),
        label(T0, offset=1),
        label(T0 + timedelta(days=8), offset=2),
    )
    service.close_windows()
    executor: FakeExecutor = service.executor  # type: ignore[assignment]
    executor.submitted[0][1].set_result(None)
    service.collect()
    feed(service, label(T0 + timedelta(hours=5), offset=3))  # its week was reported: late
    feed(service, label(datetime.now(UTC) + timedelta(days=30), offset=4))  # beyond the clock
    stats = service.stats
    assert (stats.invalid, stats.late, stats.future, stats.labels) == (1, 1, 1, 3)
    assert service.checkpoint.committable() == {("labels", 0): 2}  # only the open week holds


def test_a_label_beyond_int64_is_counted_invalid_and_its_window_is_still_judged(
    service: MonitorService,
) -> None:
    """The contract's int is unbounded (pydantic takes 2**64); the window arrays are int64."""
    huge = label(T0 + timedelta(hours=1), offset=1)
    huge.payload = (huge.payload or b"").replace(
        b'"model_version":1', b'"model_version":18446744073709551616'
    )
    feed(service, label(T0, offset=0), huge, label(T0 + timedelta(days=8), offset=2))
    assert (service.stats.invalid, service.stats.labels) == (1, 2)
    service.close_windows()
    executor: FakeExecutor = service.executor  # type: ignore[assignment]
    assert len(executor.submitted) == 1
    window, _ = executor.submitted[0]
    assert window.model_versions.tolist() == [1]  # the int64 array the judge reads


def test_eof_and_consumer_errors_advance_nothing(service: MonitorService) -> None:
    feed(service, label(T0, offset=0))
    feed(service, FakeMessage("labels", 0, 1, error_code=EOF_CODE))
    feed(service, FakeMessage("labels", 0, 1, error_code=-195))  # a transport error: logged
    assert service.checkpoint.position(("labels", 0)) == 1


def test_step_polls_routes_closes_collects_and_commits_when_due(service: MonitorService) -> None:
    service.consumer.batches = [[label(T0, offset=0), label(T0 + timedelta(days=8), offset=1)]]
    service.checkpoint.commit_interval_s = 0.0
    service.step()
    executor: FakeExecutor = service.executor  # type: ignore[assignment]
    assert len(executor.submitted) == 1
    assert service.consumer.commits == [{("labels", 0): 0}]
    executor.submitted[0][1].set_result(None)
    service.step()
    assert service.consumer.commits[-1] == {("labels", 0): 1}


def test_a_batch_is_routed_as_its_messages_one_by_one() -> None:
    """route_all (runs of labels in columns) = route per message, whatever the batch mixes."""
    respelled = label(T0 + timedelta(hours=3), offset=4)
    document = (respelled.payload or b"").decode()
    event_id = document.split('"event_id":"')[1][:36]
    respelled.payload = document.replace(event_id, event_id.upper()).encode()  # pydantic's
    batch = [
        label(T0, offset=0),
        FakeMessage("labels", 0, 1, b"not json"),
        label(T0 + timedelta(hours=1), offset=0, partition=1),
        label(T0 + timedelta(hours=2), offset=2),
        FakeMessage("labels", 1, 1, error_code=EOF_CODE),
        label(datetime.now(UTC) + timedelta(days=30), offset=3),  # beyond the clock
        respelled,
        FakeMessage("labels", 0, 5, None),  # no value
        label(T0 + timedelta(days=8), offset=6),
        label(T0 + timedelta(days=9), offset=1, partition=1),
    ]
    whole, single = _service(), _service()
    whole.route_all(batch)
    for msg in batch:
        single.route(msg)
    for svc in (whole, single):
        svc.label_clock.assign([("labels", 0), ("labels", 1)])
        svc.close_windows()
    assert whole.stats == single.stats
    assert (whole.stats.labels, whole.stats.invalid, whole.stats.future) == (6, 2, 1)
    assert (
        whole.checkpoint.position(("labels", 0)) == single.checkpoint.position(("labels", 0)) == 7
    )
    assert whole.label_clock._newest == single.label_clock._newest
    assert whole.newest_event == single.newest_event == T0 + timedelta(days=9)
    got = [window for window, _ in whole.executor.submitted]  # type: ignore[attr-defined]
    want = [window for window, _ in single.executor.submitted]  # type: ignore[attr-defined]
    assert len(got) == 1 and got[0].event_count == 4
    assert [(w.window_id, w.event_count, w.offsets) for w in got] == [
        (w.window_id, w.event_count, w.offsets) for w in want
    ]
    assert (got[0].features == want[0].features).all()
    assert whole.windower.held_offsets() == single.windower.held_offsets()


def response(at: datetime | None, offset: int, partition: int = 0) -> FakeMessage:
    stamp = -1 if at is None else int(at.timestamp() * 1000)
    return FakeMessage("responses", partition, offset, b"{}", timestamp_ms=stamp)


def test_responses_are_counted_in_their_windows_in_runs_as_one_by_one() -> None:
    """Runs of responses (Kafka timestamps) beside runs of labels: the labelled share's input."""
    batch = [
        response(T0 + timedelta(hours=1), offset=0),
        response(T0 + timedelta(hours=2), offset=1),
        response(None, offset=2),  # no timestamp: counted, not placed
        label(T0 + timedelta(hours=1), offset=0),
        response(T0 + timedelta(hours=3), offset=0, partition=1),
        response(datetime.now(UTC) + timedelta(days=30), offset=3),  # beyond the clock
        FakeMessage("responses", 1, 1, error_code=EOF_CODE),
        label(T0 + timedelta(days=8), offset=1),
        response(T0 + timedelta(days=8), offset=4),
        response(T0 + timedelta(days=8, hours=1), offset=2, partition=1),
    ]
    whole, single = _service(responses=True), _service(responses=True)
    whole.route_all(batch)
    for msg in batch:
        single.route(msg)
    for svc in (whole, single):
        svc.label_clock.assign([("labels", 0)])
        assert svc.response_clock is not None
        svc.response_clock.assign([("responses", 0), ("responses", 1)])
        svc.close_windows()
    assert whole.stats == single.stats
    assert (whole.stats.responses, whole.stats.future, whole.stats.labels) == (7, 1, 2)
    assert whole.checkpoint.position(("responses", 0)) == 5
    got = [window for window, _ in whole.executor.submitted]  # type: ignore[attr-defined]
    want = [window for window, _ in single.executor.submitted]  # type: ignore[attr-defined]
    assert [(w.window_id, w.response_count, w.offsets) for w in got] == [
        (w.window_id, w.response_count, w.offsets) for w in want
    ]
    assert got[0].response_count == 3
    assert got[0].offsets == {("labels", 0): 0, ("responses", 0): 0, ("responses", 1): 0}
    assert whole.windower.held_offsets() == single.windower.held_offsets()


def test_the_monitor_asks_for_end_offsets_without_waiting_behind_a_long_fetch() -> None:
    """_has_unread's offset query waits behind the broker's held fetch (docs/facts.md)."""
    from monitor.service import _consumer_overrides

    overrides = _consumer_overrides(MonitorSettings(_env_file=None, instance_id="m1"))
    assert overrides["fetch.wait.max.ms"] <= 100
    assert overrides["enable.partition.eof"] and overrides["group.instance.id"] == "m1"
