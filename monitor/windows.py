"""Event-time tumbling windows: watermark, allowed lateness, bounded memory, offset bookkeeping.

Everything here is driven by the events' ``submitted_at`` and never by the wall clock, so a month
replayed in a minute yields the same windows as the month lived:

* A **time window** is ``[origin + k·size, origin + (k+1)·size)``. A **count window** is the next
  ``size`` events in event-time order (ties broken by event id) once the watermark has passed them.
* The **watermark** is the minimum over partitions of the newest event time seen there, minus the
  allowed lateness (per partition, because a consumer may read one partition far ahead of another
  when catching up; a global maximum would then close windows early and drop the other partitions'
  events as late). A partition at its end (EOF) does not hold the watermark back; when every
  partition is at its end the newest event time overall is used.
* A window closes when the watermark passes its end; an event for a closed window is **late**: it is
  counted and dropped.
* Memory is bounded: a window keeps at most ``max_events`` events, chosen as those with the smallest
  hash of ``event_id`` (bottom-k sampling). Unlike a reservoir, the sample does not depend on arrival
  order, so replays and parallel instances judge identical samples.
* For at-least-once processing the windower tells the service's checkpoint
  (personas/checkpoint.py), per (topic, partition), the smallest offset still held by an open
  window, and each closed window carries the smallest offsets it holds until it is published.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from itertools import repeat
from operator import floordiv, methodcaller, sub
from uuid import UUID

import numpy as np

from personas.checkpoint import LowestOffsets, Source
from personas.label_fast import LabelStruct, features_of

__all__ = [
    "ClosedWindow",
    "CountWindower",
    "LabelRun",
    "PairedWatermark",
    "Source",
    "TimeWindower",
    "Watermark",
    "WindowEvent",
    "Windower",
    "from_us",
    "make_windower",
    "micros",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(t: datetime) -> int:
    """Microseconds since the epoch (exact integer arithmetic for window boundaries)."""
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _stamp(t: datetime) -> str:
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _older(current: datetime | None, t: datetime) -> datetime:
    return t if current is None or t < current else current


def _hash(event_id: UUID) -> int:
    return int.from_bytes(hashlib.blake2b(event_id.bytes, digest_size=8).digest(), "big")


_ONE_US = timedelta(microseconds=1)
_blake8 = partial(hashlib.blake2b, digest_size=8)
_digest = methodcaller("digest")
_unhyphen = methodcaller("replace", "-", "")


def micros(times: list[datetime]) -> np.ndarray:
    """``_us`` of every time, exactly (timedelta // 1 µs, in C loops; a float timestamp would
    round the microseconds wrong from about 2040 on)."""
    deltas = map(sub, times, repeat(_EPOCH))
    return np.fromiter(map(floordiv, deltas, repeat(_ONE_US)), dtype=np.int64, count=len(times))


def hashes(event_ids: list[str]) -> np.ndarray:
    """``_hash`` of every canonical UUID text, as uint64 (C loops, one ``join``)."""
    raw = b"".join(map(_digest, map(_blake8, map(bytes.fromhex, map(_unhyphen, event_ids)))))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64)


@dataclass(frozen=True)
class WindowEvent:
    """What the monitor keeps of one PersonaLabel."""

    event_id: UUID
    submitted_at: datetime
    features: tuple[float, ...]
    model_version: int


@dataclass(frozen=True)
class ClosedWindow:
    """A window whose end the watermark has passed: ready to be judged."""

    window_id: str
    start: datetime
    end: datetime
    event_count: int
    features: np.ndarray  # (n_kept, d)
    model_versions: np.ndarray  # (n_kept,)
    sampled: bool
    response_count: int | None
    late_events: int
    offsets: dict[Source, int]
    #: the oldest event time among ``late_events`` (how far in the past the late data reached)
    late_oldest: datetime | None = None

    @property
    def kept(self) -> int:
        return int(self.features.shape[0])


@dataclass(frozen=True)
class LabelRun:
    """Consecutive labels of one consume batch, as columns: what ``add_labels`` takes (the
    monitor's fast path; index ``i`` of every field is one label, in arrival order)."""

    labels: list[LabelStruct]
    times: list[datetime]  # submitted_at
    partitions: np.ndarray  # int64
    offsets: np.ndarray  # int64
    topic: str

    @cached_property
    def us(self) -> np.ndarray:
        return micros(self.times)

    @cached_property
    def hashes(self) -> np.ndarray:
        return hashes([label.event_id for label in self.labels])

    def __len__(self) -> int:
        return len(self.labels)

    def event(self, i: int) -> WindowEvent:
        label = self.labels[i]
        return WindowEvent(
            UUID(label.event_id), self.times[i], features_of(label), label.model_version
        )

    def kept(self, i: int, digest: int) -> _Kept:
        """What a sample keeps of label ``i`` (``digest``: its hash)."""
        label = self.labels[i]
        event_id = int(label.event_id.replace("-", ""), 16)
        return (-digest, event_id, self.times[i], features_of(label), label.model_version)

    def source(self, i: int) -> Source:
        return (self.topic, int(self.partitions[i]))

    def take(self, positions: np.ndarray) -> LabelRun:
        """The labels at ``positions`` (in that order), as a run of their own."""
        labels, times = self.labels, self.times
        return LabelRun(
            [labels[i] for i in positions],
            [times[i] for i in positions],
            self.partitions[positions],
            self.offsets[positions],
            self.topic,
        )

    def lowest_offsets(self, positions: np.ndarray) -> dict[Source, int]:
        """The smallest offset per partition among the labels at ``positions``."""
        return lowest_offsets(self.topic, self.partitions[positions], self.offsets[positions])


def lowest_offsets(topic: str, partitions: np.ndarray, offsets: np.ndarray) -> dict[Source, int]:
    """The smallest offset per partition of a run's messages (``partitions[i]``, ``offsets[i]``)."""
    return {(topic, int(p)): int(offsets[partitions == p].min()) for p in np.unique(partitions)}


def _by_window(index: np.ndarray, positions: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``positions`` grouped by their window ``index``, in window order."""
    if len(positions) == 0:
        return []
    indexes = index[positions]
    if indexes[0] == indexes[-1] and (indexes == indexes[0]).all():  # the usual case
        return [(int(indexes[0]), positions)]
    return [(int(i), positions[indexes == i]) for i in np.unique(indexes)]


#: What a sample keeps of an event: (-hash, event id as an int, submitted_at, features, model
#: version). A heap of these is ordered by hash, ties by id; the UUID and the WindowEvent are
#: built only for the kept ones, when the window closes.
_Kept = tuple[int, int, datetime, tuple[float, ...], int]


class _BottomK:
    """The k events with the smallest hash of event_id (order-independent sample)."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.count = 0
        self.duplicates = 0
        self._heap: list[_Kept] = []
        self._kept: set[int] = set()  # ids in the heap

    def add(self, event: WindowEvent) -> None:
        """Add an event; a re-delivered event that is in the sample is ignored."""
        self._add(
            (
                -_hash(event.event_id),
                event.event_id.int,
                event.submitted_at,
                event.features,
                event.model_version,
            )
        )

    def add_run(self, run: LabelRun, positions: np.ndarray) -> None:
        """``add`` each label at ``positions`` in order, with the same outcome: once the sample is
        full, a label whose hash is above the largest kept one can neither be kept nor be a
        re-delivery of a kept one (same id, same hash), so those are only counted, in one step."""
        digests = run.hashes[positions]
        n, i = len(positions), 0
        while i < n and len(self._heap) < self.k:
            self._add(run.kept(int(positions[i]), int(digests[i])))
            i += 1
        if i == n:
            return
        rest, digests = positions[i:], digests[i:]
        candidates = np.flatnonzero(digests <= np.uint64(-self._heap[0][0]))
        self.count += len(rest) - len(candidates)
        for j in candidates.tolist():
            self._add(run.kept(int(rest[j]), int(digests[j])))

    def _add(self, item: _Kept) -> None:
        kept = self._kept
        if item[1] in kept:
            self.duplicates += 1
            return
        self.count += 1
        heap = self._heap
        if len(heap) < self.k:
            heapq.heappush(heap, item)
            kept.add(item[1])
        elif item[:2] > heap[0][:2]:  # smaller hash than the largest kept
            dropped = heapq.heapreplace(heap, item)
            kept.discard(dropped[1])
            kept.add(item[1])

    def events(self) -> list[WindowEvent]:
        kept = sorted(self._heap, key=lambda item: (item[2], item[1]))
        return [WindowEvent(UUID(int=item[1]), item[2], item[3], item[4]) for item in kept]


def _arrays(events: list[WindowEvent], d: int) -> tuple[np.ndarray, np.ndarray]:
    if not events:
        return np.empty((0, d)), np.empty(0, dtype=np.int64)
    features = np.array([e.features for e in events], dtype=np.float64)
    versions = np.array([e.model_version for e in events], dtype=np.int64)
    return features, versions


class Watermark:
    """min over partitions of (newest event time) − lateness; monotonic; idle partitions excluded.

    A partition at its end (EOF) stops holding the watermark back only once it has stayed there
    ``idle_after`` seconds (wall clock) with nothing new, and only while it really has nothing
    unread: when the watermark is about to move past it, ``has_unread`` (the broker's end offset
    against our position) is asked.

    * Without ``has_unread``, a burst produced to every partition at once moved the watermark on
      the first partition's share alone (the others still at their old EOF) and the rest of the
      burst was dropped as late — 281 of 1,000 March events in one CI run.
    * Without ``idle_after``, a monitor that keeps up with the stream app reaches the end of a
      partition the app is still writing, far behind the others in event time (it labels a
      backlog partition by partition): 188,814 of 10,000,000 labels (1.9 %) were late in one
      replay (docs/benchmarks/replay_loop.md). A partition at its end within the grace period
      holds the watermark at its newest event (an empty one holds it where it is).
    """

    def __init__(
        self,
        lateness: timedelta,
        has_unread: Callable[[Source], bool] | None = None,
        *,
        idle_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lateness = lateness
        self.has_unread = has_unread
        self.idle_after = idle_after
        self.clock = clock
        self._newest: dict[Source, datetime] = {}
        self._ended: dict[Source, float] = {}  # at its end since (clock), no record since
        self._assigned: set[Source] | None = None
        self._value: datetime | None = None

    def assign(self, sources: list[Source]) -> None:
        """Partitions this consumer reads; one never heard of (no event, no EOF) holds it back."""
        self._assigned = set(sources)

    def observe(self, source: Source, t: datetime) -> None:
        newest = self._newest.get(source)
        if newest is None or t > newest:
            self._newest[source] = t
        self._ended.pop(source, None)

    def eof(self, source: Source) -> None:
        self._ended.setdefault(source, self.clock())

    def value(self) -> datetime | None:
        idle = self._idle()
        candidate = self._candidate(idle)
        if candidate is None or (self._value is not None and candidate <= self._value):
            return self._value
        if self.has_unread is not None:
            woken = [s for s in self._sources() & idle if self.has_unread(s)]
            if woken:  # data arrived there after its EOF: it holds the watermark again
                for source in woken:
                    del self._ended[source]
                if any(s not in self._newest for s in woken):
                    return self._value
                candidate = self._candidate(idle.difference(woken))
                if candidate is None or (self._value is not None and candidate <= self._value):
                    return self._value
        self._value = candidate
        return self._value

    def _idle(self) -> set[Source]:
        """Partitions at their end for ``idle_after`` seconds or more."""
        if not self._ended:
            return set()
        now = self.clock()
        return {s for s, since in self._ended.items() if now - since >= self.idle_after}

    def _sources(self) -> set[Source]:
        sources = set(self._newest) | set(self._ended)
        return sources if self._assigned is None else sources & self._assigned

    def _candidate(self, idle: set[Source]) -> datetime | None:
        if self._assigned is not None and self._assigned - (set(self._newest) | set(self._ended)):
            return None
        sources = self._sources()
        holding = [s for s in sources if s not in idle]
        if any(s not in self._newest for s in holding):
            return None  # an empty partition still in its grace period
        if holding:
            return min(self._newest[s] for s in holding) - self.lateness
        seen = [self._newest[s] for s in sources if s in self._newest]
        return max(seen) - self.lateness if seen else None

    def empty_and_caught_up(self) -> bool:
        """Every assigned partition is at its end and none ever held an event: no constraint."""
        if self._assigned is None or not self._assigned:
            return False
        return self._assigned <= set(self._ended) and not (self._assigned & set(self._newest))


class PairedWatermark:
    """The labels' watermark, held back by the responses' watermark while responses lag.

    Windows are judged on labels, so the labels' watermark decides; but when the consumer reads
    the responses topic behind the labels topic (catching up), a window closed on the labels' clock
    alone would miss responses that belong to it and its labelled share would be wrong. The
    responses never push the watermark further than the labels' (when the stream app stalls, no
    window closes early), and an empty responses topic does not hold anything back.
    """

    def __init__(self, labels: Watermark, responses: Watermark | None) -> None:
        self.labels = labels
        self.responses = responses
        self._value: datetime | None = None

    def value(self) -> datetime | None:
        candidate = self.labels.value()
        responses = self.responses
        if candidate is not None and responses is not None and not responses.empty_and_caught_up():
            secondary = responses.value()
            candidate = None if secondary is None else min(candidate, secondary)
        if candidate is not None and (self._value is None or candidate > self._value):
            self._value = candidate
        return self._value


@dataclass
class _OpenWindow:
    start_us: int
    sample: _BottomK
    responses: int = 0
    offsets: LowestOffsets = field(default_factory=LowestOffsets)

    def hold(self, source: Source | None, offset: int | None) -> None:
        if source is not None and offset is not None:
            self.offsets.add(source, offset)


class TimeWindower:
    """Tumbling event-time windows of a fixed duration aligned to ``origin``."""

    def __init__(
        self,
        size: timedelta,
        *,
        origin: datetime,
        max_events: int,
        label: str,
        n_features: int = 10,
    ) -> None:
        if size <= timedelta(0):
            raise ValueError("window size must be positive")
        self.size_us = _us(_EPOCH + size)
        self.origin_us = _us(origin)
        self.max_events = max_events
        self.label = label
        self.n_features = n_features
        self.late_events = 0
        self.late_responses = 0
        self._late_since_close = 0
        self._late_oldest: datetime | None = None
        self._open: dict[int, _OpenWindow] = {}
        self._closed_until_us: int | None = None

    def _index(self, t: datetime) -> int:
        return (_us(t) - self.origin_us) // self.size_us

    def _is_late(self, index: int) -> bool:
        end = self.origin_us + (index + 1) * self.size_us
        return self._closed_until_us is not None and end <= self._closed_until_us

    def _window(self, index: int) -> _OpenWindow:
        window = self._open.get(index)
        if window is None:
            start = self.origin_us + index * self.size_us
            window = self._open[index] = _OpenWindow(start, _BottomK(self.max_events))
        return window

    def add_label(
        self, event: WindowEvent, source: Source | None = None, offset: int | None = None
    ) -> bool:
        """Add a labelled event; False (counted as late) if its window has already closed."""
        index = self._index(event.submitted_at)
        if self._is_late(index):
            self.late_events += 1
            self._late_since_close += 1
            self._late_oldest = _older(self._late_oldest, event.submitted_at)
            return False
        window = self._window(index)
        window.sample.add(event)
        window.hold(source, offset)
        return True

    def add_labels(self, run: LabelRun) -> np.ndarray:
        """``add_label`` for every label of a run, window by window; the positions of the late
        ones (counted as late, not added)."""
        index, late = self._indexes(run.us)
        late_positions = np.flatnonzero(late)
        if len(late_positions):
            self.late_events += len(late_positions)
            self._late_since_close += len(late_positions)
            oldest = late_positions[int(np.argmin(run.us[late_positions]))]
            self._late_oldest = _older(self._late_oldest, run.times[int(oldest)])
        for i, positions in _by_window(index, np.flatnonzero(~late)):
            window = self._window(i)
            window.sample.add_run(run, positions)
            window.offsets.add_all(run.lowest_offsets(positions))
        return late_positions

    def add_responses(
        self, us: np.ndarray, partitions: np.ndarray, offsets: np.ndarray, topic: str
    ) -> int:
        """``add_response`` for a run of responses (``us``: their times, exact microseconds);
        how many were late."""
        index, late = self._indexes(us)
        for i, positions in _by_window(index, np.flatnonzero(~late)):
            window = self._window(i)
            window.responses += len(positions)
            window.offsets.add_all(lowest_offsets(topic, partitions[positions], offsets[positions]))
        n_late = int(late.sum())
        self.late_responses += n_late
        return n_late

    def _indexes(self, us: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The window index of each time and whether that window has already closed."""
        index = (us - self.origin_us) // self.size_us
        if self._closed_until_us is None:
            return index, np.zeros(len(us), dtype=bool)
        return index, self.origin_us + (index + 1) * self.size_us <= self._closed_until_us

    def add_response(
        self, submitted_at: datetime, source: Source | None = None, offset: int | None = None
    ) -> bool:
        """Count a survey response (input side) in its window."""
        index = self._index(submitted_at)
        if self._is_late(index):
            self.late_responses += 1
            return False
        window = self._window(index)
        window.responses += 1
        window.hold(source, offset)
        return True

    def advance(self, watermark: datetime | None) -> list[ClosedWindow]:
        """Close (in start order) every open window whose end is at or before the watermark."""
        if watermark is None:
            return []
        wm = _us(watermark)
        if self._closed_until_us is None or wm > self._closed_until_us:
            self._closed_until_us = wm
        closed: list[ClosedWindow] = []
        for index in sorted(self._open):
            window = self._open[index]
            end_us = window.start_us + self.size_us
            if end_us > wm:
                break
            del self._open[index]
            start = from_us(window.start_us)
            features, versions = _arrays(window.sample.events(), self.n_features)
            closed.append(
                ClosedWindow(
                    window_id=f"{self.label}-{_stamp(start)}",
                    start=start,
                    end=from_us(end_us),
                    event_count=window.sample.count,
                    features=features,
                    model_versions=versions,
                    sampled=window.sample.count > self.max_events,
                    response_count=window.responses,
                    late_events=self._late_since_close,
                    offsets=dict(window.offsets),
                    late_oldest=self._late_oldest,
                )
            )
            self._late_since_close = 0
            self._late_oldest = None
        return closed

    def held_offsets(self) -> LowestOffsets:
        """Smallest offset per source still needed by an open window."""
        return LowestOffsets.of(window.offsets for window in self._open.values())

    @property
    def open_windows(self) -> int:
        return len(self._open)


@dataclass(frozen=True)
class _Pending:
    event: WindowEvent
    source: Source | None
    offset: int | None

    @property
    def key(self) -> tuple[datetime, UUID]:
        return (self.event.submitted_at, self.event.event_id)


def _held(items: Iterable[_Pending]) -> LowestOffsets:
    held = LowestOffsets()
    for item in items:
        if item.source is not None and item.offset is not None:
            held.add(item.source, item.offset)
    return held


class CountWindower:
    """Windows of ``size`` consecutive events in event-time order, cut once the watermark passes.

    Events wait until the watermark passes them (so late arrivals within the allowed lateness still
    land in order), then are cut into windows of exactly ``size`` events. The window id names the
    first event, so a replay yields the same ids. Memory holds the not-yet-cut events: a count window
    larger than ``max_events`` is sampled like a time window.
    """

    def __init__(self, size: int, *, max_events: int, label: str, n_features: int = 10) -> None:
        if size < 1:
            raise ValueError("count window size must be positive")
        self.size = size
        self.max_events = max_events
        self.label = label
        self.n_features = n_features
        self.late_events = 0
        self.late_responses = 0
        self.responses = 0
        self._late_since_close = 0
        self._late_oldest: datetime | None = None
        self._pending: list[_Pending] = []
        self._ready: list[_Pending] = []
        self._last_key: tuple[datetime, UUID] | None = None

    def add_label(
        self, event: WindowEvent, source: Source | None = None, offset: int | None = None
    ) -> bool:
        item = _Pending(event, source, offset)
        if self._last_key is not None and item.key <= self._last_key:
            self.late_events += 1
            self._late_since_close += 1
            self._late_oldest = _older(self._late_oldest, event.submitted_at)
            return False
        self._pending.append(item)
        return True

    def add_labels(self, run: LabelRun) -> np.ndarray:
        """``add_label`` for every label of a run; the positions of the late ones."""
        late = [
            i
            for i in range(len(run))
            if not self.add_label(run.event(i), run.source(i), int(run.offsets[i]))
        ]
        return np.array(late, dtype=np.int64)

    def add_responses(
        self, us: np.ndarray, partitions: np.ndarray, offsets: np.ndarray, topic: str
    ) -> int:
        """Count windows have no fixed time range: responses are only counted overall."""
        self.responses += len(us)
        return 0

    def add_response(
        self, submitted_at: datetime, source: Source | None = None, offset: int | None = None
    ) -> bool:
        """Count windows have no fixed time range: responses are only counted overall."""
        self.responses += 1
        return True

    def advance(self, watermark: datetime | None) -> list[ClosedWindow]:
        if watermark is None:
            return []
        passed = [p for p in self._pending if p.event.submitted_at <= watermark]
        if passed:
            self._pending = [p for p in self._pending if p.event.submitted_at > watermark]
            self._ready.extend(passed)
            self._ready.sort(key=lambda p: p.key)
        closed: list[ClosedWindow] = []
        while len(self._ready) >= self.size:
            chunk, self._ready = self._ready[: self.size], self._ready[self.size :]
            closed.append(self._close(chunk))
        return closed

    def _close(self, chunk: list[_Pending]) -> ClosedWindow:
        self._last_key = chunk[-1].key
        sample = _BottomK(self.max_events)
        for item in chunk:
            sample.add(item.event)
        offsets = _held(chunk)
        features, versions = _arrays(sample.events(), self.n_features)
        first = chunk[0].event
        late, self._late_since_close = self._late_since_close, 0
        oldest, self._late_oldest = self._late_oldest, None
        return ClosedWindow(
            window_id=f"n{self.size}-{_stamp(first.submitted_at)}-{first.event_id.hex[:8]}",
            start=first.submitted_at,
            end=chunk[-1].event.submitted_at + timedelta(microseconds=1),
            event_count=len(chunk),
            features=features,
            model_versions=versions,
            sampled=len(chunk) > self.max_events,
            response_count=None,
            late_events=late,
            offsets=offsets,
            late_oldest=oldest,
        )

    def held_offsets(self) -> LowestOffsets:
        """Smallest offset per source of the events not yet cut into a window."""
        return _held((*self._pending, *self._ready))

    @property
    def open_windows(self) -> int:
        return 1 if (self._pending or self._ready) else 0


Windower = TimeWindower | CountWindower


def make_windower(
    window: str, *, origin: datetime, max_events: int, n_features: int = 10
) -> Windower:
    """Build the windower a ``window`` setting describes (``"7d"`` or ``"500"``)."""
    from monitor.settings import parse_duration

    text = window.strip()
    if text.isdigit():
        return CountWindower(
            int(text), max_events=max_events, label=f"n{text}", n_features=n_features
        )
    return TimeWindower(
        parse_duration(text),
        origin=origin,
        max_events=max_events,
        label=text,
        n_features=n_features,
    )
