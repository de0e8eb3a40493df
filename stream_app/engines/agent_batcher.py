"""Coalesce what ``Stream.noack_take`` hands over into batches for the single writer thread.

Only one batch is written at a time (one thread: batches become durable, and are acknowledged, in
order). While it is being written, newly taken events accumulate here; when it completes, up to
``max_batch`` of them are submitted at once. So a light stream gets small batches every
``batch_timeout`` (low latency) and a heavy one gets big batches automatically (per-batch costs —
a PostgreSQL transaction, a producer flush — amortised), without a fixed trade-off. When
``max_pending`` events wait, the agent stops taking: back-pressure reaches Faust's stream buffer,
which pauses the partitions.

Everything here runs on the event loop thread (the completion callback included), so no locks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any

from stream_app.records import RawRecord

__all__ = ["Batcher"]

Run = Callable[[list[RawRecord]], "asyncio.Future[Any]"]
OnDurable = Callable[[list[Any], list[RawRecord]], None]
OnFailure = Callable[[BaseException], None]


class Batcher:
    def __init__(
        self,
        run: Run,
        on_durable: OnDurable,
        on_failure: OnFailure,
        *,
        max_batch: int,
        max_pending: int,
    ) -> None:
        self._run = run
        self._on_durable = on_durable
        self._on_failure = on_failure
        self.max_batch = max_batch
        self.max_pending = max(max_pending, max_batch)
        self._events: list[Any] = []
        self._records: list[RawRecord] = []
        self._running: asyncio.Future[Any] | None = None
        self._changed = asyncio.Event()
        self.failure: BaseException | None = None
        self.closed = False
        self.submitted: list[int] = []  # sizes of the batches handed to the writer

    @property
    def pending(self) -> int:
        return len(self._records)

    @property
    def busy(self) -> bool:
        return self._running is not None

    def unfinished(self) -> str | None:
        """What is left undurable (so uncommitted) if the worker stops now; None if nothing.
        The runtime says it, once (``Runtime.say_uncommitted``)."""
        if self.busy or self.failure is not None:  # being written, or failed (never acked)
            return "in-flight batch not durable"
        if self.pending:  # nothing is being written: events were taken, never started
            return f"{self.pending} events taken but not yet written"
        return None

    def add(self, events: list[Any], records: list[RawRecord]) -> None:
        self._events.extend(events)
        self._records.extend(records)
        if self._running is None and self.failure is None and not self.closed:
            self._submit()

    async def wait_capacity(self) -> None:
        """Return when fewer than ``max_pending`` events wait (or the writer failed)."""
        while self.pending >= self.max_pending and self.busy and self.failure is None:
            self._changed.clear()
            await self._changed.wait()

    async def drain(self, grace: float) -> bool:
        """Stop submitting; wait up to ``grace`` s for the batch being written. True if durable."""
        self.closed = True
        running = self._running
        if running is None:
            return self.failure is None
        try:
            await asyncio.wait_for(asyncio.shield(running), grace)
        except BaseException:  # timeout, failure or cancellation: not durable, not acked
            return False
        await asyncio.sleep(0)  # let the completion callback acknowledge it
        return self.failure is None

    def _submit(self) -> None:
        n = self.max_batch
        events, self._events = self._events[:n], self._events[n:]
        records, self._records = self._records[:n], self._records[n:]
        self.submitted.append(len(records))
        future = self._run(records)
        self._running = future
        future.add_done_callback(partial(self._done, events, records))

    def _done(
        self, events: list[Any], records: list[RawRecord], future: asyncio.Future[Any]
    ) -> None:
        self._running = None
        self._changed.set()
        if future.cancelled():
            self.failure = asyncio.CancelledError()
        elif (exc := future.exception()) is not None:
            self.failure = exc
        if self.failure is not None:
            self._on_failure(self.failure)
            return
        self._on_durable(events, records)
        if self._records and not self.closed:
            self._submit()
