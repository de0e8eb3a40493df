"""The monitor's columnar path (``add_labels`` over a LabelRun) decides exactly as the per-event
path (``add_label`` one at a time): same windows, counts, duplicates, samples, offsets, late labels.

Hypothesis draws runs of labels over a few windows and partitions, with re-delivered events, exact
window boundaries, labels for already closed windows and tiny samples (so the "only counted" shortcut
of a full sample is exercised), and feeds them to two windowers, run by run, advancing both alike.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.windows import ClosedWindow, CountWindower, LabelRun, TimeWindower, _us, micros
from personas.label_fast import LabelStruct, features_of

ORIGIN = datetime(2024, 1, 1, tzinfo=UTC)
T0 = datetime(2025, 2, 3, tzinfo=UTC)

ids = st.lists(st.uuids(), min_size=1, max_size=12, unique=True)  # a small pool: re-deliveries
moments = st.one_of(
    st.integers(0, 4 * 86_400 * 1_000_000),  # four daily windows, to the microsecond
    st.integers(0, 4).map(lambda d: d * 86_400 * 1_000_000),  # exactly on a boundary
)


def _label(event_id: uuid.UUID, at: datetime, value: float) -> LabelStruct:
    return LabelStruct(
        event_id=str(event_id),
        respondent_id="r",
        submitted_at=at.isoformat(),
        persona_id=0,
        persona_name="p",
        distance=1.0,
        margin=1.0,
        is_outlier=False,
        model_version=int(value) % 3,
        labelled_at=at.isoformat(),
        **{f"x{i}": value + i for i in range(1, 11)},
    )


@st.composite
def runs(draw: st.DrawFn) -> list[tuple[LabelRun, bool]]:
    pool = draw(ids)
    out: list[tuple[LabelRun, bool]] = []
    offsets = {0: 0, 1: 0}
    for _ in range(draw(st.integers(1, 5))):
        n = draw(st.integers(1, 25))
        labels, times, parts, offs = [], [], [], []
        for _ in range(n):
            at = T0 + timedelta(microseconds=draw(moments))
            if draw(st.booleans()):  # an offset other than UTC: same instant
                at = at.astimezone(timezone(timedelta(hours=-3)))
            p = draw(st.sampled_from([0, 1]))
            labels.append(_label(draw(st.sampled_from(pool)), at, float(len(labels))))
            times.append(at)
            parts.append(p)
            offs.append(offsets[p])
            offsets[p] += 1
        run = LabelRun(labels, times, np.array(parts), np.array(offs), "labels")
        out.append((run, draw(st.booleans())))  # advance the watermark after this run?
    return out


def _same(a: list[ClosedWindow], b: list[ClosedWindow]) -> None:
    assert [w.window_id for w in a] == [w.window_id for w in b]
    for x, y in zip(a, b, strict=True):
        assert (x.event_count, x.late_events, x.offsets, x.late_oldest, x.sampled) == (
            y.event_count,
            y.late_events,
            y.offsets,
            y.late_oldest,
            y.sampled,
        )
        assert np.array_equal(x.features, y.features)
        assert np.array_equal(x.model_versions, y.model_versions)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=runs(), k=st.sampled_from([1, 2, 3, 5, 100]), cut=st.integers(0, 5))
def test_a_run_is_added_as_its_labels_one_by_one(
    batches: list[tuple[LabelRun, bool]], k: int, cut: int
) -> None:
    columnar = TimeWindower(timedelta(days=1), origin=ORIGIN, max_events=k, label="1d")
    single = TimeWindower(timedelta(days=1), origin=ORIGIN, max_events=k, label="1d")
    closed_c: list[ClosedWindow] = []
    closed_s: list[ClosedWindow] = []
    newest: datetime | None = None
    for run, advance in batches:
        late = columnar.add_labels(run).tolist()
        late_one_by_one = [
            i
            for i in range(len(run))
            if not single.add_label(run.event(i), run.source(i), int(run.offsets[i]))
        ]
        assert late == late_one_by_one
        assert columnar.held_offsets() == single.held_offsets()
        newest = max([newest, *run.times] if newest else run.times)
        if advance:
            mark = newest - timedelta(hours=cut * 6)
            closed_c += columnar.advance(mark)
            closed_s += single.advance(mark)
        dups = {i: w.sample.duplicates for i, w in columnar._open.items()}
        assert dups == {i: w.sample.duplicates for i, w in single._open.items()}
    assert columnar.late_events == single.late_events
    closed_c += columnar.advance(T0 + timedelta(days=10))
    closed_s += single.advance(T0 + timedelta(days=10))
    _same(closed_c, closed_s)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=runs())
def test_count_windows_take_runs_too(batches: list[tuple[LabelRun, bool]]) -> None:
    columnar = CountWindower(4, max_events=3, label="n4")
    single = CountWindower(4, max_events=3, label="n4")
    for run, _ in batches:
        late = columnar.add_labels(run).tolist()
        assert late == [
            i
            for i in range(len(run))
            if not single.add_label(run.event(i), run.source(i), int(run.offsets[i]))
        ]
        mark = max(run.times)
        _same(columnar.advance(mark), single.advance(mark))


@given(st.lists(st.datetimes(timezones=st.just(UTC)), max_size=20))
def test_micros_is_exact_for_any_time(times: list[datetime]) -> None:
    assert micros(times).tolist() == [_us(t) for t in times]


def test_a_run_event_is_the_label() -> None:
    eid = uuid.uuid4()
    label = _label(eid, T0, 2.0)
    run = LabelRun([label], [T0], np.array([1]), np.array([7]), "labels")
    event = run.event(0)
    assert (event.event_id, event.submitted_at, event.features) == (eid, T0, features_of(label))
    assert run.source(0) == ("labels", 1) and run.lowest_offsets(np.array([0])) == {
        ("labels", 1): 7
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(
        st.tuples(
            st.lists(st.tuples(moments, st.sampled_from([0, 1])), min_size=1, max_size=20),
            st.booleans(),
        ),
        min_size=1,
        max_size=5,
    ),
    cut=st.integers(0, 5),
)
def test_a_run_of_responses_is_counted_as_its_responses_one_by_one(
    batches: list[tuple[list[tuple[int, int]], bool]], cut: int
) -> None:
    columnar = TimeWindower(timedelta(days=1), origin=ORIGIN, max_events=5, label="1d")
    single = TimeWindower(timedelta(days=1), origin=ORIGIN, max_events=5, label="1d")
    offsets = {0: 0, 1: 0}
    newest: datetime | None = None
    closed_c: list[ClosedWindow] = []
    closed_s: list[ClosedWindow] = []
    for items, advance in batches:
        times = [T0 + timedelta(microseconds=m) for m, _ in items]
        parts = np.array([p for _, p in items])
        offs = []
        for _, p in items:
            offs.append(offsets[p])
            offsets[p] += 1
        late = columnar.add_responses(micros(times), parts, np.array(offs), "responses")
        late_one_by_one = sum(
            not single.add_response(t, ("responses", int(p)), o)
            for t, p, o in zip(times, parts, offs, strict=True)
        )
        assert late == late_one_by_one and columnar.late_responses == single.late_responses
        assert columnar.held_offsets() == single.held_offsets()
        newest = max([newest, *times] if newest else times)
        if advance:
            mark = newest - timedelta(hours=cut * 6)
            closed_c += columnar.advance(mark)
            closed_s += single.advance(mark)
    closed_c += columnar.advance(T0 + timedelta(days=10))
    closed_s += single.advance(T0 + timedelta(days=10))
    assert [(w.window_id, w.response_count, w.offsets) for w in closed_c] == [
        (w.window_id, w.response_count, w.offsets) for w in closed_s
    ]
