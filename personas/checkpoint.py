"""One consumer's checkpoint: what was processed, what is durable, what may be committed, and when.

Kafka keeps one number per partition for a consumer group, the committed offset, and it means
"every record below this one is done": after a crash, reading resumes there. So a consumer may
commit, per partition, only the smallest offset that is not durable yet, never the newest offset
it has read. Two services need that with different shapes of "durable":

* the stream's batch engine: a batch is durable when ``BatchProcessor.process`` returns (labels
  acknowledged by Kafka, rows committed in PostgreSQL). Records become durable in reading order,
  so the next offset to commit is simply the last processed offset + 1;
* the monitor: an event is durable only when the window holding it has been published (its
  drift_reports row committed and its messages acknowledged). Windows close out of reading order
  (event time, many partitions), so the commit must stay at the smallest offset still held by an
  open or unpublished window.

:class:`Checkpoint` covers both in the spirit of quixstreams' ``Checkpoint``, without owning the
work itself: the caller says what it has processed (:meth:`Checkpoint.processed`), what is not
durable yet (:meth:`Checkpoint.hold` under a key, dropped with :meth:`Checkpoint.release`; or a
live *holder* such as the monitor's windower, asked at commit time), and asks when a commit is due
(:meth:`Checkpoint.due`) and what may be committed (:meth:`Checkpoint.committable`), or lets it
commit through a confluent-kafka consumer (:meth:`Checkpoint.commit`). The offset it commits per
partition never passes a record that is held and never goes backwards.

:class:`LowestOffsets` is the one place that computes "the smallest offset per partition": the
monitor's windows use it for what each window holds, and the checkpoint for what all of them hold.

How each consumer uses it::

    # records durable in reading order (the stream's batch engine)
    checkpoint = Checkpoint(commit_interval)          # consumer config: on_commit=checkpoint.on_commit
    process(records)                                  # durable on return
    checkpoint.processed_up_to(next_offsets(records))
    if checkpoint.due():
        checkpoint.commit(consumer, asynchronous=True)
    # on_revoke: checkpoint.commit(consumer, only=revoked); checkpoint.forget(revoked)
    # on_lost:   checkpoint.forget(lost)

    # records durable out of order (the monitor)
    checkpoint = Checkpoint(commit_interval, holders=[windower.held_offsets])
    checkpoint.processed(source, offset)              # every message read
    checkpoint.hold(key, window.offsets)              # a closed window, until it is published
    checkpoint.release(key)

Not thread-safe: one consumer thread calls everything (confluent-kafka's rebalance and commit
callbacks run inside ``poll``/``consume`` on that thread too). Nothing here imports a service;
confluent-kafka is imported only inside :meth:`Checkpoint.commit`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from typing import Any

__all__ = ["Checkpoint", "Holder", "LowestOffsets", "Source"]

log = logging.getLogger(__name__)

#: (topic, partition)
Source = tuple[str, int]
#: Asked at commit time: per partition, the smallest offset its owner still needs.
Holder = Callable[[], Mapping[Source, int]]


class LowestOffsets(dict[Source, int]):
    """Per partition, the smallest offset added: where re-reading must start to get every record
    added back. A plain ``dict`` otherwise (it compares equal to one)."""

    def add(self, source: Source, offset: int) -> None:
        current = self.get(source)
        if current is None or offset < current:
            self[source] = offset

    def add_all(self, offsets: Mapping[Source, int]) -> None:
        for source, offset in offsets.items():
            self.add(source, offset)

    @classmethod
    def of(cls, many: Iterable[Mapping[Source, int]]) -> LowestOffsets:
        """The lowest offsets over several maps (e.g. over every open window)."""
        lowest = cls()
        for offsets in many:
            lowest.add_all(offsets)
        return lowest


class Checkpoint:
    """Tracks a consumer's processed and durable offsets and commits the safe ones on schedule.

    * **processed**: per partition, the position after the newest record the caller has handled
      (``offset + 1``). A processed record counts as durable unless something holds it.
    * **held**: records that are processed but not durable yet, as lowest offsets per partition,
      either under a key (:meth:`hold` / :meth:`release`: a window being published, a batch being
      written) or reported live by a holder given at construction (a windower's open windows).
    * **committable**: per processed partition, ``min(position, lowest held offset)``, never less
      than what was committed before: a record below the committed offset was durable when that
      offset was committed (a re-delivery after a rebalance), so holding it again changes nothing.
    * **due**: at once while nothing has been sent, then ``commit_interval_s`` after each commit
      attempt that had something to send, succeeded or not: a broker that refuses commits is
      asked again once per interval, not at every poll, while an attempt with nothing to send
      leaves the commit due — the first durable batch, or one after a quiet spell, is committed
      without waiting out an interval nobody used.
    * **in flight**: an asynchronous commit counts as committed when sent (so it is not sent
      again every interval) but stays *in flight* until ``on_commit`` confirms it. A synchronous
      commit — the last one before a partition is handed over or the consumer closes — sends the
      in-flight offsets again: if the asynchronous one then fails, the next owner would re-read
      records that were durable.
    """

    def __init__(
        self,
        commit_interval_s: float,
        *,
        holders: Iterable[Holder] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.commit_interval_s = max(commit_interval_s, 0.0)
        self._holders = list(holders)
        self._clock = clock
        self._positions: dict[Source, int] = {}
        self._holds: dict[Hashable, LowestOffsets] = {}
        self._committed: dict[Source, int] = {}
        self._in_flight: dict[Source, int] = {}  # asynchronous commits not confirmed yet
        self._last_attempt: float | None = None

    # ------------------------------------------------------------------ processed

    def processed(self, source: Source, offset: int) -> None:
        """The record at ``offset`` has been handled (durable unless held)."""
        if offset + 1 > self._positions.get(source, -1):
            self._positions[source] = offset + 1

    def processed_up_to(self, next_offsets: Mapping[Source, int]) -> None:
        """Every record below ``next_offsets[source]`` has been handled (a batch's end)."""
        for source, next_offset in next_offsets.items():
            self.processed(source, next_offset - 1)

    def position(self, source: Source) -> int | None:
        """The offset after the newest processed record of ``source`` (None: nothing yet)."""
        return self._positions.get(source)

    # ------------------------------------------------------------------ durable

    def hold(self, key: Hashable, offsets: Mapping[Source, int]) -> None:
        """Records from ``offsets[source]`` on, for ``key``, are not durable yet (merged with an
        earlier hold of the same key)."""
        self._holds.setdefault(key, LowestOffsets()).add_all(offsets)

    def release(self, key: Hashable) -> None:
        """``key``'s records are durable now (a key never held is ignored)."""
        self._holds.pop(key, None)

    def held(self) -> LowestOffsets:
        """Per partition, the lowest offset held by a key or a holder."""
        lowest = LowestOffsets.of(self._holds.values())
        for holder in self._holders:
            lowest.add_all(holder())
        return lowest

    @property
    def holding(self) -> int:
        """How many keys hold records."""
        return len(self._holds)

    # ------------------------------------------------------------------ commit

    def committable(self, only: Collection[Source] | None = None) -> dict[Source, int]:
        """Per processed partition (or only those in ``only``), the next offset to commit."""
        held = self.held()
        out: dict[Source, int] = {}
        for source, position in self._positions.items():
            if only is not None and source not in only:
                continue
            offset = min(position, held.get(source, position))
            out[source] = max(offset, self._committed.get(source, offset))
        return out

    def uncommitted(
        self, only: Collection[Source] | None = None, *, in_flight: bool = False
    ) -> dict[Source, int]:
        """What :meth:`committable` gives that differs from what was last committed — and, with
        ``in_flight``, also what an unconfirmed asynchronous commit sent."""
        return {
            source: offset
            for source, offset in self.committable(only).items()
            if self._committed.get(source) != offset or (in_flight and source in self._in_flight)
        }

    @property
    def committed(self) -> Mapping[Source, int]:
        """Per partition, the offset last committed (recorded by :meth:`commit` or
        :meth:`mark_committed`)."""
        return self._committed

    def due(self) -> bool:
        last = self._last_attempt
        return last is None or self._clock() - last >= self.commit_interval_s

    def mark_committed(self, offsets: Mapping[Source, int]) -> None:
        """Record a commit done outside :meth:`commit`; restarts the interval."""
        self._committed.update(offsets)
        for source in offsets:
            self._in_flight.pop(source, None)
        self._last_attempt = self._clock()

    def commit(
        self,
        consumer: Any,
        *,
        only: Collection[Source] | None = None,
        asynchronous: bool = False,
    ) -> dict[Source, int]:
        """Commit :meth:`uncommitted` through a confluent-kafka ``consumer``; what was committed.

        A failed commit is logged, not raised: the records since the last commit are read again
        after a restart, which every consumer here absorbs (idempotent sinks, stored windows).
        An asynchronous commit is recorded when sent; pass :meth:`on_commit` as the consumer's
        ``on_commit`` callback so a failure is retried at the next due commit. A synchronous
        commit also re-sends what asynchronous ones still have in flight.
        """
        from confluent_kafka import KafkaException, TopicPartition

        pending = self.uncommitted(only, in_flight=not asynchronous)
        if not pending:
            return {}
        self._last_attempt = self._clock()
        offsets = [TopicPartition(t, p, o) for (t, p), o in pending.items()]
        try:
            result = consumer.commit(offsets=offsets, asynchronous=asynchronous)
        except KafkaException as exc:
            log.warning("offset commit failed (%s); those records will be read again", exc)
            return {}
        for tp in result or ():
            if getattr(tp, "error", None) is not None:
                log.warning("offset commit failed for %s[%d]: %s", tp.topic, tp.partition, tp.error)
                pending.pop((tp.topic, tp.partition), None)
        self._committed.update(pending)
        for source, offset in pending.items():
            if asynchronous:
                self._in_flight[source] = offset
            else:
                self._in_flight.pop(source, None)
        return pending

    def on_commit(self, err: Any, partitions: Iterable[Any]) -> None:
        """confluent-kafka's ``on_commit`` callback: a confirmed commit is no longer in flight; a
        failed one is forgotten, so the next due commit sends it again (unless a later commit
        already replaced it)."""
        failed = []
        for tp in partitions:
            source = (tp.topic, tp.partition)
            if self._in_flight.get(source) == tp.offset:
                del self._in_flight[source]
            if err is not None or getattr(tp, "error", None) is not None:
                failed.append(tp)
        if not failed:
            return
        log.warning(
            "offset commit failed (%s); it is retried at the next commit",
            err if err is not None else failed[0].error,
        )
        for tp in failed:
            source = (tp.topic, tp.partition)
            if self._committed.get(source) == tp.offset:
                del self._committed[source]

    def forget(self, sources: Iterable[Source]) -> None:
        """Partitions that are no longer ours (revoked, lost): their offsets are the next owner's
        business. Holds on them are dropped; a holder's entries are ignored without a position."""
        gone = set(sources)
        for source in gone:
            self._positions.pop(source, None)
            self._committed.pop(source, None)
            self._in_flight.pop(source, None)
        for held in self._holds.values():
            for source in gone:
                held.pop(source, None)
