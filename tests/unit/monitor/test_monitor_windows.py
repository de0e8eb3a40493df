"""Event-time windows: boundaries, watermark, lateness, replay-speed independence, sampling."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from monitor.windows import (
    ClosedWindow,
    CountWindower,
    PairedWatermark,
    TimeWindower,
    Watermark,
    WindowEvent,
    make_windower,
)

ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
T0 = datetime(2025, 2, 3, tzinfo=UTC)  # a Monday


def event(
    t: datetime, value: float = 0.0, version: int = 1, seed: int | None = None
) -> WindowEvent:
    eid = uuid.UUID(int=random.Random(seed).getrandbits(128)) if seed is not None else uuid.uuid4()
    return WindowEvent(eid, t, (value,) * 10, version)


def weekly(max_events: int = 10_000) -> TimeWindower:
    return TimeWindower(timedelta(days=7), origin=ORIGIN, max_events=max_events, label="7d")


def test_time_window_bounds_and_id() -> None:
    w = weekly()
    assert w.add_label(event(T0 + timedelta(days=2, hours=5)))
    assert w.add_label(event(T0 + timedelta(days=7)))  # next week, exactly on the boundary
    closed = w.advance(T0 + timedelta(days=7))
    assert [(c.window_id, c.start, c.end, c.event_count) for c in closed] == [
        ("7d-2025-02-03T00:00:00Z", T0, T0 + timedelta(days=7), 1)
    ]
    assert w.open_windows == 1


def test_window_stays_open_until_watermark_passes_end() -> None:
    w = weekly()
    w.add_label(event(T0 + timedelta(hours=1)))
    assert w.advance(T0 + timedelta(days=7) - timedelta(microseconds=1)) == []
    assert len(w.advance(T0 + timedelta(days=7))) == 1


def test_watermark_is_min_over_partitions_minus_lateness() -> None:
    wm = Watermark(timedelta(hours=1))
    wm.assign([("labels", 0), ("labels", 1)])
    wm.observe(("labels", 0), T0 + timedelta(days=3))
    assert wm.value() is None  # partition 1 not heard of yet
    wm.observe(("labels", 1), T0 + timedelta(days=1))
    assert wm.value() == T0 + timedelta(days=1) - timedelta(hours=1)
    wm.eof(("labels", 1))  # caught up: no longer holds the watermark back
    assert wm.value() == T0 + timedelta(days=3) - timedelta(hours=1)
    wm.eof(("labels", 0))
    assert wm.value() == T0 + timedelta(days=3) - timedelta(hours=1)
    wm.observe(("labels", 1), T0 + timedelta(days=2))  # never moves back
    assert wm.value() == T0 + timedelta(days=3) - timedelta(hours=1)


def test_late_events_within_lateness_count_beyond_are_dropped() -> None:
    w = weekly()
    wm = Watermark(timedelta(hours=2))
    src = ("labels", 0)
    for t in (T0 + timedelta(days=6, hours=23), T0 + timedelta(days=7, hours=1)):
        w.add_label(event(t), src, 0)
        wm.observe(src, t)
    assert w.advance(wm.value()) == []  # watermark 23:00 on day 6: week still open
    # 1 h late, within the 2 h lateness: still lands in its week
    assert w.add_label(event(T0 + timedelta(days=6, hours=22)), src, 2)
    wm.observe(src, T0 + timedelta(days=7, hours=3))
    closed = w.advance(wm.value())
    assert [c.event_count for c in closed] == [2]
    # now the week is closed: an event for it is late and dropped
    assert not w.add_label(event(T0 + timedelta(days=5)), src, 3)
    assert w.late_events == 1
    wm.observe(src, T0 + timedelta(days=14, hours=2))
    second = w.advance(wm.value())
    assert [(c.event_count, c.late_events) for c in second] == [(1, 1)]


def test_events_far_in_the_past_are_counted_with_the_oldest_time_in_the_next_window() -> None:
    """Years older than anything the monitor still keeps: not judged, never silently dropped."""
    w = weekly()
    w.add_label(event(T0))
    assert len(w.advance(T0 + timedelta(days=7))) == 1
    for t in (datetime(2019, 6, 1, tzinfo=UTC), datetime(2017, 3, 4, tzinfo=UTC), T0):
        assert not w.add_label(event(t))
    w.add_label(event(T0 + timedelta(days=8)))
    (closed,) = w.advance(T0 + timedelta(days=14))
    assert (closed.late_events, closed.late_oldest) == (3, datetime(2017, 3, 4, tzinfo=UTC))
    w.add_label(event(T0 + timedelta(days=15)))
    (after,) = w.advance(T0 + timedelta(days=21))
    assert (after.late_events, after.late_oldest) == (0, None)


def test_count_windows_report_the_oldest_late_event_too() -> None:
    w = CountWindower(2, max_events=100, label="n2")
    for day in (1, 2):
        w.add_label(event(T0 + timedelta(days=day)))
    assert len(w.advance(T0 + timedelta(days=3))) == 1
    assert not w.add_label(event(datetime(2018, 1, 1, tzinfo=UTC)))
    for day in (4, 5):
        w.add_label(event(T0 + timedelta(days=day)))
    (closed,) = w.advance(T0 + timedelta(days=6))
    assert (closed.late_events, closed.late_oldest) == (1, datetime(2018, 1, 1, tzinfo=UTC))


def _replay(order: list[tuple[int, WindowEvent]], lateness: timedelta) -> list[tuple]:
    w = weekly()
    wm = Watermark(lateness)
    wm.assign([("labels", p) for p in range(3)])
    out: list[ClosedWindow] = []
    for offset, (partition, ev) in enumerate(order):
        src = ("labels", partition)
        w.add_label(ev, src, offset)
        wm.observe(src, ev.submitted_at)
        out.extend(w.advance(wm.value()))
    for p in range(3):
        wm.eof(("labels", p))
    wm.observe(("labels", 0), T0 + timedelta(days=60))
    out.extend(w.advance(wm.value()))
    return [(c.window_id, c.event_count, c.features.sum().round(9), c.late_events) for c in out]


def test_same_windows_whatever_the_interleaving_of_partitions() -> None:
    """A month read partition after partition (a fast catch-up) or interleaved (live) is the same."""
    rng = random.Random(7)
    per_partition: list[list[tuple[int, WindowEvent]]] = [[] for _ in range(3)]
    t = T0
    for i in range(600):
        t += timedelta(minutes=rng.randint(1, 120))
        p = rng.randrange(3)
        per_partition[p].append((p, event(t, value=float(i), seed=i)))
    live = sorted((e for part in per_partition for e in part), key=lambda pe: pe[1].submitted_at)
    catch_up = [e for part in per_partition for e in part]  # partition 0 entirely first
    expected = _replay(live, timedelta(hours=1))
    assert len(expected) == 4
    assert sum(n for _, n, _, _ in expected) == 600
    assert _replay(catch_up, timedelta(hours=1)) == expected


def test_bottom_k_sample_does_not_depend_on_arrival_order() -> None:
    events = [event(T0 + timedelta(seconds=i), value=float(i), seed=i) for i in range(500)]
    results = []
    for order in (events, list(reversed(events)), random.Random(3).sample(events, 500)):
        w = weekly(max_events=100)
        for ev in order:
            w.add_label(ev)
        (closed,) = w.advance(T0 + timedelta(days=7))
        results.append(closed)
    assert all(c.sampled and c.event_count == 500 and c.kept == 100 for c in results)
    assert np.array_equal(results[0].features, results[1].features)
    assert np.array_equal(results[0].features, results[2].features)


def test_redelivered_event_is_not_counted_twice() -> None:
    w = weekly()
    ev = event(T0 + timedelta(hours=1))
    w.add_label(ev)
    w.add_label(ev)
    (closed,) = w.advance(T0 + timedelta(days=7))
    assert closed.event_count == 1


def test_responses_counted_per_window_and_offsets_held() -> None:
    w = weekly()
    w.add_label(event(T0 + timedelta(hours=1)), ("labels", 0), 10)
    w.add_response(T0 + timedelta(hours=1), ("responses", 0), 40)
    w.add_response(T0 + timedelta(hours=2), ("responses", 0), 41)
    w.add_label(event(T0 + timedelta(days=8)), ("labels", 0), 11)
    assert w.held_offsets() == {("labels", 0): 10, ("responses", 0): 40}
    (closed,) = w.advance(T0 + timedelta(days=7, hours=1))
    assert (closed.event_count, closed.response_count) == (1, 2)
    assert closed.offsets == {("labels", 0): 10, ("responses", 0): 40}
    assert w.held_offsets() == {("labels", 0): 11}


def test_count_windows_cut_in_event_time_order() -> None:
    w = CountWindower(3, max_events=100, label="n3")
    times = [T0 + timedelta(minutes=m) for m in (5, 1, 3, 2, 4, 9, 7)]
    for i, t in enumerate(times):
        w.add_label(event(t, value=float(i)), ("labels", 0), i)
    assert w.advance(T0) == []
    closed = w.advance(T0 + timedelta(minutes=8))  # 1..7 passed: two full windows, 9 waits
    assert [c.event_count for c in closed] == [3, 3]
    assert closed[0].start == T0 + timedelta(minutes=1)
    assert closed[0].end == T0 + timedelta(minutes=3, microseconds=1)
    assert closed[1].start == T0 + timedelta(minutes=4)
    assert closed[0].window_id.startswith("n3-2025-02-03T00:01:00Z-")
    assert not w.add_label(event(T0 + timedelta(minutes=6)))  # before the last cut: late
    assert w.held_offsets() == {("labels", 0): 5}


def test_make_windower_parses_setting() -> None:
    assert isinstance(make_windower("7d", origin=ORIGIN, max_events=10), TimeWindower)
    counted = make_windower("500", origin=ORIGIN, max_events=10)
    assert isinstance(counted, CountWindower) and counted.size == 500


@pytest.mark.parametrize("bad", ["0d", "-1h"])
def test_time_window_must_be_positive(bad: str) -> None:
    from personas.errors import ConfigError

    with pytest.raises((ValueError, ConfigError)):
        make_windower(bad, origin=ORIGIN, max_events=10)


def test_responses_hold_the_watermark_back_only_while_they_lag() -> None:
    hour = timedelta(hours=1)
    labels, responses = Watermark(hour), Watermark(hour)
    labels.assign([("labels", 0)])
    responses.assign([("responses", 0)])
    paired = PairedWatermark(labels, responses)
    labels.observe(("labels", 0), T0 + timedelta(days=9))
    assert paired.value() is None  # responses not read yet: their counts would be incomplete
    responses.observe(("responses", 0), T0 + timedelta(days=3))  # catching up, behind labels
    assert paired.value() == T0 + timedelta(days=3) - hour
    responses.observe(("responses", 0), T0 + timedelta(days=12))  # ahead: labels decide
    assert paired.value() == T0 + timedelta(days=9) - hour


def test_an_empty_responses_topic_holds_nothing_back() -> None:
    hour = timedelta(hours=1)
    labels, responses = Watermark(hour), Watermark(hour)
    labels.assign([("labels", 0)])
    responses.assign([("responses", 0), ("responses", 1)])
    labels.observe(("labels", 0), T0 + timedelta(days=9))
    responses.eof(("responses", 0))
    assert PairedWatermark(labels, responses).value() is None  # partition 1 not heard of yet
    responses.eof(("responses", 1))
    assert PairedWatermark(labels, responses).value() == T0 + timedelta(days=9) - hour
    assert PairedWatermark(labels, None).value() == T0 + timedelta(days=9) - hour


def test_a_partition_at_eof_with_unread_data_holds_the_watermark() -> None:
    """A burst to every partition: the first partition's share must not move the watermark past
    a partition whose EOF is stale (it has unread data); once it is read, or truly empty, it may."""
    unread: set[tuple[str, int]] = set()
    wm = Watermark(timedelta(hours=1), has_unread=lambda source: source in unread)
    a, b = ("labels", 0), ("labels", 1)
    wm.assign([a, b])
    for source in (a, b):
        wm.observe(source, T0)
        wm.eof(source)
    assert wm.value() == T0 - timedelta(hours=1)
    unread.add(b)  # the burst reached b too, but only a's share has been read
    wm.observe(a, T0 + timedelta(days=20))
    assert wm.value() == T0 - timedelta(hours=1)  # held by b's last event
    wm.observe(b, T0 + timedelta(days=19))  # b's share is read
    unread.discard(b)
    assert wm.value() == T0 + timedelta(days=19) - timedelta(hours=1)
    wm.eof(a)
    wm.eof(b)  # both at their end, nothing unread: the newest event decides
    assert wm.value() == T0 + timedelta(days=20) - timedelta(hours=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_partition_just_caught_up_holds_the_watermark_for_the_grace_period() -> None:
    """The monitor reaches the end of a partition the stream app is still writing, hours behind
    the others in event time: it holds the watermark until it has been idle ``idle_after`` s."""
    clock = FakeClock()
    wm = Watermark(timedelta(hours=1), has_unread=lambda source: False, idle_after=10, clock=clock)
    ahead, behind = ("labels", 0), ("labels", 1)
    wm.assign([ahead, behind])
    wm.observe(ahead, T0 + timedelta(days=3))
    wm.observe(behind, T0)
    wm.eof(behind)  # caught up with the writer, for now
    assert wm.value() == T0 - timedelta(hours=1)
    clock.now += 9.9
    assert wm.value() == T0 - timedelta(hours=1)  # still within the grace period
    wm.observe(behind, T0 + timedelta(hours=5))  # the writer went on: the partition is active
    clock.now += 60
    assert wm.value() == T0 + timedelta(hours=4)  # never idle since its last record
    wm.eof(behind)
    clock.now += 10
    assert wm.value() == T0 + timedelta(days=3) - timedelta(hours=1)  # idle now: excluded


def test_every_partition_at_its_end_decides_only_once_all_are_idle() -> None:
    clock = FakeClock()
    wm = Watermark(timedelta(hours=1), idle_after=5, clock=clock)
    a, b, empty = ("labels", 0), ("labels", 1), ("labels", 2)
    wm.assign([a, b, empty])
    wm.observe(a, T0 + timedelta(days=1))
    wm.observe(b, T0)
    wm.eof(empty)
    assert wm.value() is None  # an empty partition in its grace period holds it where it is
    clock.now += 5
    assert wm.value() == T0 - timedelta(hours=1)  # the empty one is idle: min of a and b
    wm.eof(a)
    wm.eof(b)
    clock.now += 4
    assert wm.value() == T0 - timedelta(hours=1)
    clock.now += 1
    assert wm.value() == T0 + timedelta(days=1) - timedelta(hours=1)  # all idle: the newest
