"""Hot swap on model-updates: every worker of a group swaps; a broken model is refused; swaps
while events flow never go back on a partition and never split a batch."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise

import numpy as np
from fault_tools import wait_for
from loop_tools import label_rows
from stream_helpers import (
    SteadyFlow,
    Worker,
    label_lock_waiters,
    make_events,
    metric,
    produce_events,
    publish_update,
    read_topic,
    register_version,
)

from personas import db
from personas.kafka import read_to_end
from personas.model import CentroidModel
from personas.settings import Settings


def _shifted(model: CentroidModel, by: float) -> CentroidModel:
    return CentroidModel.from_dict(
        {**model.to_dict(), "centroids": (model.centroids + by).tolist()}
    )


def _partitions(worker: Worker) -> list[int]:
    return list((worker.health() or {}).get("partitions") or [])


def _version_of(worker: Worker) -> int | None:
    state = worker.health()
    return None if state is None else int(state["model_version"])


def test_two_workers_of_one_group_both_swap_on_one_update(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    v1 = register_version(s, _shifted(vendor_model, 0.5).to_dict())
    a, b = workers(), workers()
    a.wait_ready()
    b.wait_ready()
    wait_for(
        lambda: (
            sorted((a.health() or {})["partitions"] + (b.health() or {})["partitions"])
            == [0, 1, 2, 3]
        ),
        60,
        "the two workers to share the four partitions",
    )
    assert a.health()["partitions"] and b.health()["partitions"]  # type: ignore[index]
    before = make_events(vendor_model, 400, seed=21)
    produce_events(s, before)
    wait_for(lambda: label_rows(s)[0] == 400, 60, "400 rows labelled by v1")

    v2 = register_version(s, _shifted(vendor_model, -0.5).to_dict())
    publish_update(s, v2, previous=v1)  # registry polling is off (300 s): the topic must do it
    wait_for(lambda: _version_of(a) == v2 and _version_of(b) == v2, 30, "both workers on version 2")
    after = make_events(vendor_model, 400, seed=22)
    produce_events(s, after)
    wait_for(lambda: label_rows(s)[0] == 800, 60, "400 more rows")

    labels = [json.loads(m.value()) for m in read_topic(s, s.topics.labels, expect=800)]
    version_by_event = {label["event_id"]: label["model_version"] for label in labels}
    assert {version_by_event[e["event_id"]] for e in before} == {v1}
    assert {version_by_event[e["event_id"]] for e in after} == {v2}
    for worker in (a, b):
        text = worker.metrics()
        assert metric(text, "persona_stream_model_version") == v2
        assert metric(text, "persona_stream_model_swaps_total", result="applied") == 1
        assert metric(text, "persona_stream_model_swaps_total", result="refused") == 0
        assert f"hot swap: model version {v1} -> {v2}" in worker.output()


def test_a_broken_model_never_replaces_the_working_one(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    v1 = register_version(s, vendor_model.to_dict())
    worker = workers()
    assert worker.wait_ready()["model_version"] == v1

    broken = vendor_model.to_dict()
    broken["centroids"] = np.where(
        np.eye(3, 10, dtype=bool), np.nan, np.asarray(broken["centroids"])
    ).tolist()
    v2 = register_version(s, broken)  # NaN centroids
    publish_update(s, v2, previous=v1)
    # The worker reads the alias when an update arrives (not the message's version): v2 must be
    # looked at before the alias moves on to v3, or v2 is rightly never downloaded at all.
    wait_for(lambda: (worker.health() or {}).get("refused_versions") == [v2], 30, "v2 refused")
    unknown = {**vendor_model.to_dict(), "persona_ids": [0, 1, 42]}
    v3 = register_version(s, unknown)  # a persona nobody knows
    publish_update(s, v3, previous=v2)
    wait_for(
        lambda: (worker.health() or {}).get("refused_versions") == [v2, v3],
        30,
        "both broken versions refused",
    )
    events = make_events(vendor_model, 300, seed=31)
    produce_events(s, events)
    wait_for(lambda: label_rows(s)[0] == 300, 60, "300 rows")
    labels = [json.loads(m.value()) for m in read_topic(s, s.topics.labels, expect=300)]
    assert {label["model_version"] for label in labels} == {v1}
    text = worker.metrics()
    assert metric(text, "persona_stream_model_version") == v1
    assert metric(text, "persona_stream_model_swaps_total", result="refused") == 2
    assert metric(text, "persona_stream_model_swaps_total", result="applied") == 0
    output = worker.output()
    assert f"refused model version {v2}" in output and "NaN" in output
    assert f"refused model version {v3}" in output and "unknown persona ids [42]" in output


def test_starts_from_the_disk_cache_when_mlflow_is_down(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    s = isolated_settings
    v1 = register_version(s, _shifted(vendor_model, 0.25).to_dict())
    first = workers()
    assert first.wait_ready()["model_version"] == v1
    first.stop()
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    again = workers(PERSONA_MLFLOW_TRACKING_URI=dead)
    state = again.wait_ready()
    assert state["model_version"] == v1 and "on-disk cache" in state["model_source"]
    fresh = workers(state="empty", PERSONA_MLFLOW_TRACKING_URI=dead)
    state = fresh.wait_ready()
    assert state["model_version"] == 0 and "vendor" in state["model_source"]


def test_swaps_while_events_flow_never_go_back_on_a_partition_nor_split_a_batch(
    isolated_settings: Settings,
    workers: Callable[..., Worker],
    vendor_model: CentroidModel,
) -> None:
    """Three new champions mid-stream, two workers on four partitions: per source partition, in
    offset order, model_version never decreases; and every batch is labelled by one version.

    Why it holds: a partition is read by one worker, batch after batch, in offset order; the
    follower's thread only replaces the model reference (``personas.champion.ChampionFollower``);
    and ``pipeline.BatchProcessor.process`` reads ``self.holder.current`` once, before
    ``label_batch``, which labels the whole batch with that model and stamps every row with one
    ``labelled_at``. That timestamp is the batch's identity here: rows of one worker sharing a
    ``labelled_at`` are one batch, and they must share a model_version. (Going back on a
    partition is possible by design after a rollback — the alias is followed either way — or if a
    rebalance moved a partition between workers during the instant one had swapped and the other
    not; this test publishes forward only and checks the assignment never moved.)

    The second swap is made to land mid-batch: PostgreSQL holds both workers' writes behind a
    table lock for the whole swap, so each has a batch labelled but not yet durable while its
    model changes; that batch must keep the old version to the end.
    """
    s = isolated_settings
    versions = [register_version(s, _shifted(vendor_model, 0.5).to_dict())]
    a, b = workers(state="a"), workers(state="b")
    a.wait_ready()
    b.wait_ready()

    def assignment() -> dict[int, str] | None:
        owners = {p: name for name, w in (("a", a), ("b", b)) for p in _partitions(w)}
        both = _partitions(a) and _partitions(b)
        return owners if both and sorted(owners) == [0, 1, 2, 3] else None

    owner: dict[int, str] = wait_for(assignment, 60, "the two workers to share the partitions")
    flow = SteadyFlow(s, make_events(vendor_model, 30_000, seed=51), rate=300)
    flow.start()
    for i, shift in enumerate((-0.5, 0.25, -0.25)):
        wait_for(lambda i=i: label_rows(s)[0] >= 1200 * (i + 1), 60, "rows under the current model")
        version = register_version(s, _shifted(vendor_model, shift).to_dict())
        on_it = f"both workers on version {version}"
        if i == 1:
            with db.connect(s) as blocker:
                blocker.execute("LOCK TABLE persona_labels IN ACCESS EXCLUSIVE MODE")
                wait_for(lambda: label_lock_waiters(s) >= 2, 30, "both workers' batches held")
                publish_update(s, version, previous=versions[-1])
                wait_for(lambda v=version: _version_of(a) == v == _version_of(b), 30, on_it)
                assert label_lock_waiters(s) == 2  # both batches were in flight for the whole swap
                blocker.rollback()
        else:
            publish_update(s, version, previous=versions[-1])
            wait_for(lambda v=version: _version_of(a) == v == _version_of(b), 30, on_it)
        versions.append(version)
    last = label_rows(s)[0]
    wait_for(lambda: label_rows(s)[0] >= last + 1200, 60, "rows under the last model")
    events = flow.stop()
    n = len(events)
    wait_for(lambda: label_rows(s)[0] >= n, 60, f"all {n} rows")
    assert label_rows(s) == (n, n)
    assert assignment() == owner, "no rebalance during the test"

    where: dict[str, tuple[int, int]] = {}
    for m in read_to_end(s, s.topics.responses):
        where[json.loads(m.value())["event_id"]] = (m.partition(), m.offset())
    with db.connect(s, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT event_id::text, model_version, labelled_at FROM persona_labels"
        ).fetchall()
    label_of = {event_id: (version, at) for event_id, version, at in rows}
    assert set(label_of) == set(where)

    by_partition: dict[int, list[tuple[int, int]]] = defaultdict(list)
    batches: dict[tuple[str, datetime], set[int]] = defaultdict(set)
    sizes: dict[tuple[str, datetime], int] = defaultdict(int)
    for event_id, (version, at) in label_of.items():
        partition, offset = where[event_id]
        by_partition[partition].append((offset, version))
        batches[owner[partition], at].add(version)
        sizes[owner[partition], at] += 1
    for partition, labelled in sorted(by_partition.items()):
        sequence = [version for _, version in sorted(labelled)]
        back = [(x, y) for x, y in pairwise(sequence) if y < x]
        assert not back, f"partition {partition} went back: {back[:5]}; versions {versions}"
        assert sequence[0] == versions[0] and sequence[-1] == versions[-1]
    assert {v for _, (v, _) in label_of.items()} == set(versions)  # each swap mid-stream
    mixed = {batch: sorted(v) for batch, v in batches.items() if len(v) > 1}
    assert not mixed, f"{len(mixed)} batches labelled by two versions: {list(mixed.items())[:5]}"
    assert max(sizes.values()) > 1  # batches of one event could not mix

    labels = [json.loads(m.value()) for m in read_to_end(s, s.topics.labels)]
    assert len(labels) == n
    for label in labels:  # the topic says what PostgreSQL says, batch stamp included
        version, at = label_of[label["event_id"]]
        assert (label["model_version"], datetime.fromisoformat(label["labelled_at"])) == (
            version,
            at,
        )
