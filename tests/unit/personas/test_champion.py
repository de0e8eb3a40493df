"""personas.champion: the one champion follower of the stream worker and the REST service —
acceptance, start-up, the update rule (the alias, not the message), outages versus bugs, the
model-updates listener. Fakes stand in for MLflow and Kafka."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from champion_fakes import DOWN, Consumer, Registry, version_of

from personas.champion import (
    APPROVED_KEY,
    ChampionFollower,
    UpdateListener,
    approved_ids,
    check_candidate,
)
from personas.errors import InvalidModel, PersonaError
from personas.model import CentroidModel
from personas.schemas import ModelUpdated, utc_now
from personas.settings import Settings

SETTINGS = Settings(model_name="m")


def _follower(tmp_path: Path, registry: Registry, **kwargs: object) -> ChampionFollower:
    kwargs.setdefault("poll_interval_s", 3600)
    return ChampionFollower(SETTINGS, cache_dir=tmp_path, registry=registry, **kwargs)  # type: ignore[arg-type]


def _update(version: int, *, name: str = "m", alias: str = "champion") -> bytes:
    event = ModelUpdated(model_name=name, version=version, alias=alias, updated_at=utc_now())
    return event.model_dump_json().encode()


# -- acceptance --------------------------------------------------------------------------------
def test_check_candidate_refuses_what_labels_wrongly(vendor_model: CentroidModel) -> None:
    ids = [*vendor_model.persona_ids[:-1], 42]
    with pytest.raises(InvalidModel, match=r"unknown persona ids \[42\]"):
        check_candidate(version_of(vendor_model, 2, persona_ids=ids), allow_new_personas=False)
    same = vendor_model.centroids.copy()
    same[1] = same[0]
    with pytest.raises(InvalidModel, match="own persona"):
        check_candidate(
            version_of(vendor_model, 2, centroids=same.tolist()), allow_new_personas=True
        )
    check_candidate(version_of(vendor_model, 2, persona_ids=ids), allow_new_personas=True)
    approved = version_of(vendor_model, 2, persona_ids=ids, metadata={APPROVED_KEY: [42]})
    check_candidate(approved, allow_new_personas=False)


@pytest.mark.parametrize("listed", [["42"], [42.0], [True], "42", {"42": 1}, None])
def test_only_a_list_of_integer_ids_approves(vendor_model: CentroidModel, listed: object) -> None:
    ids = [*vendor_model.persona_ids[:-1], 42]
    candidate = version_of(vendor_model, 2, persona_ids=ids, metadata={APPROVED_KEY: listed})
    assert approved_ids(candidate) == frozenset()
    with pytest.raises(InvalidModel, match="unknown persona ids"):
        check_candidate(candidate, allow_new_personas=False)


def test_a_follower_that_skipped_the_accepted_version_takes_its_retrained_successor(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    """v6 was accepted (persona 42 approved), v8 retrained from it and carries the approval: a
    worker that never saw v6 — listener down, a blip while v6 downloaded, a fresh start — takes
    v8 like one that stepped through v6. A v8 without the approval is refused by both: the rule
    is the candidate's, not the history of the process that asks."""
    ids = [*vendor_model.persona_ids, 42]
    grown = [*vendor_model.centroids.tolist(), [9.0] * vendor_model.centroids.shape[1]]
    names = [*vendor_model.persona_names, "New Nora"]

    def grown_version(version: int, approved: list[int] | None) -> CentroidModel:
        metadata = {} if approved is None else {APPROVED_KEY: approved}
        return version_of(
            vendor_model, version, persona_ids=ids, persona_names=names, centroids=grown,
            metadata=metadata,
        )  # fmt: skip

    registry = Registry()
    registry.models[6] = grown_version(6, [42])
    registry.models[8] = grown_version(8, [42])
    registry.models[9] = grown_version(9, None)
    registry.champion = None
    stepped, skipped = _follower(tmp_path / "a", registry), _follower(tmp_path / "b", registry)
    stepped.load()
    skipped.load()
    registry.champion = 6
    assert stepped.refresh()
    registry.champion = 8
    assert stepped.refresh() and stepped.current.version == 8
    assert skipped.refresh() and skipped.current.version == 8
    fresh = _follower(tmp_path / "c", registry)
    fresh.load()
    assert fresh.current.version == 8

    registry.champion = 9
    for follower in (stepped, skipped, fresh):
        assert not follower.refresh()
        assert follower.current.version == 8
        assert 9 in follower.refused_versions
    started_on_9 = _follower(tmp_path / "d", registry)
    started_on_9.load()
    assert started_on_9.current.version != 9  # the first model passes the same rule


def test_a_cached_model_is_checked_like_any_other(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    same = vendor_model.centroids.copy()
    same[1] = same[0]
    registry = Registry()
    registry.fault = DOWN
    follower = _follower(tmp_path, registry)
    follower.cache.save(version_of(vendor_model, 4, centroids=same.tolist()))
    assert follower.load().source == "vendor"


# -- the update rule: the alias, never the message ---------------------------------------------
def test_a_late_update_never_moves_the_follower_back(
    vendor_model: CentroidModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v2 then v3 were promoted; v2's message arrives after v3's (late, replayed, out of order).
    The follower asks the registry each time, so it stays on v3 and never downloads v2 again."""
    import confluent_kafka

    registry = Registry({2: version_of(vendor_model, 2), 3: version_of(vendor_model, 3)})
    registry.champion = 2
    follower = _follower(tmp_path, registry)
    follower.load()
    registry.champion = 3
    stop = threading.Event()
    consumer = Consumer(
        SETTINGS.topics.model_updates,
        messages=[_update(3), _update(9, name="other"), _update(2), _update(2)],
        when_drained=stop.set,
    )
    monkeypatch.setattr(confluent_kafka, "Consumer", consumer)
    seen: list[bool] = []

    def on_update() -> None:
        seen.append(follower.refresh("model-updates"))

    UpdateListener(SETTINGS, on_update, stop, group_prefix="persona-test").run()
    assert follower.current.version == 3
    assert registry.loads == [2, 3]
    # one look right after positioning (an update may have slipped in before), then v3, v2, v2
    assert seen == [True, False, False, False]
    assert consumer.assigned == [(0, 7), (1, 7)]  # every partition, at the end offsets read
    assert consumer.config["group.id"].startswith("persona-test-")
    assert consumer.closed


def test_a_rollback_of_the_alias_is_followed(vendor_model: CentroidModel, tmp_path: Path) -> None:
    registry = Registry({2: version_of(vendor_model, 2), 3: version_of(vendor_model, 3)})
    registry.champion = 3
    follower = _follower(tmp_path, registry)
    follower.load()
    registry.champion = 2  # an operator moved the alias back
    assert follower.refresh("model-updates") is True
    assert follower.current.version == 2


def test_listener_stopped_before_the_topic_answers_exits_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopping while the topic never answered must end the thread quietly, never positioned
    (the stream's old watcher raised UnboundLocalError here and still said it was assigned)."""
    import confluent_kafka

    stop = threading.Event()

    def unreachable() -> None:
        stop.set()  # the service stops while the listener waits for the topic
        raise confluent_kafka.KafkaException(
            confluent_kafka.KafkaError(confluent_kafka.KafkaError._TRANSPORT)
        )

    consumer = Consumer(SETTINGS.topics.model_updates, list_topics=unreachable)
    monkeypatch.setattr(confluent_kafka, "Consumer", consumer)
    woken: list[bool] = []
    listener = UpdateListener(SETTINGS, lambda: woken.append(True), stop, group_prefix="p")
    listener.run()  # on this thread, so an exception fails the test
    assert not listener.assigned.is_set()
    assert woken == [] and consumer.assigned == [] and consumer.closed


# -- outages versus bugs -----------------------------------------------------------------------
def test_an_outage_keeps_the_model_and_is_reported(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    registry = Registry({1: version_of(vendor_model, 1)})
    registry.champion = 1
    follower = _follower(tmp_path, registry)
    follower.load()
    registry.fault = DOWN
    assert follower.refresh() is False
    assert follower.current.version == 1
    assert follower.status.registry_reachable is False
    assert "connection refused" in (follower.status.last_error or "")


def test_a_bug_while_following_is_raised_not_reported_as_an_outage(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    registry = Registry({1: version_of(vendor_model, 1)})
    registry.champion = 1
    follower = _follower(tmp_path, registry)
    follower.load()
    registry.fault = KeyError("a bug in our own code")
    with pytest.raises(KeyError):
        follower.refresh()
    assert follower.current.version == 1
    assert follower.status.registry_reachable is True  # MLflow is fine: nobody should look there
    assert follower.status.last_error is None
    assert follower.refused_versions == set()


def test_a_bug_at_start_is_raised_not_served_around(tmp_path: Path) -> None:
    registry = Registry()
    registry.fault = TypeError("a bug in our own code")
    follower = _follower(tmp_path, registry)
    with pytest.raises(TypeError):
        follower.load()
    assert follower.status.registry_reachable is None


def test_the_poller_logs_a_bug_with_its_traceback_and_keeps_following(
    vendor_model: CentroidModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry({1: version_of(vendor_model, 1)})
    follower = _follower(tmp_path, registry).start()
    try:
        registry.fault = KeyError("a bug in our own code")
        with caplog.at_level(logging.ERROR, logger="personas.champion"):
            follower.wake()
            _until(lambda: any(r.exc_info for r in caplog.records), "the bug logged")
        record = next(r for r in caplog.records if r.exc_info)
        assert record.exc_info is not None and record.exc_info[0] is KeyError
        assert "not an outage" in record.getMessage()
        assert follower.status.registry_reachable is True
        registry.fault = None
        registry.champion = 1
        follower.wake()
        _until(lambda: follower.current.version == 1, "the next look to swap")
    finally:
        follower.stop()


def test_a_download_outage_is_retried_soon_not_at_the_next_poll(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    registry = Registry({1: DOWN})
    registry.champion = None
    follower = _follower(tmp_path, registry, retry_interval_s=0.05).start()
    try:
        registry.champion = 1
        follower.wake()
        _until(lambda: follower.retry_due, "the download to fail")
        registry.models[1] = version_of(vendor_model, 1)  # MLflow is back; the poll is an hour away
        _until(lambda: follower.current.version == 1, "the retry")
        assert not follower.retry_due
    finally:
        follower.stop()


def test_other_persona_errors_are_retried_not_refused(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    registry = Registry({1: PersonaError("odd answer")})
    follower = _follower(tmp_path, registry)
    follower.load()
    registry.champion = 1
    assert follower.refresh() is False
    assert follower.refused_versions == set() and follower.retry_due
    registry.models[1] = version_of(vendor_model, 1)
    assert follower.refresh() is True


def test_without_a_listener_the_follower_is_ready_at_once(tmp_path: Path) -> None:
    follower = _follower(tmp_path, Registry())
    assert follower.watcher.listener is None and follower.watcher.assigned.is_set()
    with pytest.raises(RuntimeError, match="load"):
        _ = follower.current


def _until(condition: object, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_the_watchers_threads_start_and_stop(
    vendor_model: CentroidModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stop() joins both threads (a Thread subclass keeping its stop Event in ``_stop`` shadowed
    Thread._stop, and join() raised TypeError: every stream worker exited 1 on SIGTERM)."""
    import confluent_kafka

    registry = Registry({2: version_of(vendor_model, 2)})
    registry.champion = 2
    consumer = Consumer(SETTINGS.topics.model_updates, messages=[_update(2)])
    monkeypatch.setattr(confluent_kafka, "Consumer", consumer)
    follower = _follower(tmp_path, registry, updates_group_prefix="persona-test")
    follower.load()
    follower.watcher.start()
    assert follower.watcher.assigned.wait(5)
    _until(lambda: follower.current.version == 2, "the look after positioning")
    follower.stop(timeout=5)
    assert follower.watcher.listener is not None and not follower.watcher.listener.is_alive()
    assert consumer.closed


def test_a_refusal_stays_in_the_status_while_the_alias_points_there(
    vendor_model: CentroidModel, tmp_path: Path
) -> None:
    """/health must keep naming the refused champion at every poll, not only at the one that
    refused it (an operator looking a second later saw 'last_error: null')."""
    registry = Registry({1: version_of(vendor_model, 1), 2: InvalidModel("centroids contain NaN")})
    registry.champion = 1
    follower = _follower(tmp_path, registry)
    follower.load()
    registry.champion = 2
    for _ in range(3):
        assert follower.refresh() is False
        assert follower.status.last_error == "champion version 2 refused: centroids contain NaN"
        assert follower.status.registry_reachable is True
    assert registry.loads == [1, 2]
    registry.champion = 1  # rolled back: nothing wrong any more
    assert follower.refresh() is False and follower.status.last_error is None


def test_an_outage_while_retrying_is_logged_once_not_at_every_retry(
    vendor_model: CentroidModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = Registry({1: version_of(vendor_model, 1), 2: DOWN})
    registry.champion = 1
    follower = _follower(tmp_path, registry)
    follower.load()
    registry.champion = 2
    with caplog.at_level(logging.INFO, logger="personas.champion"):
        for _ in range(5):
            assert follower.refresh("retry") is False
    lines = [r.getMessage() for r in caplog.records]
    assert sum("will retry" in line for line in lines) == 1
    assert sum("registry unreachable" in line for line in lines) == 1
    assert not any("reachable again" in line for line in lines)
    assert follower.status.registry_reachable is False
