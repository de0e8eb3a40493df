"""Exponential backoff between retries of a batch's outputs, cut short when the worker stops.

Its own module because both outputs retry with it (``sink.py``: PostgreSQL, ``output.py``: Kafka)
and neither should import the other for it.
"""

from __future__ import annotations

import threading

from personas.errors import Stopping

__all__ = ["Backoff"]


class Backoff:
    """Exponential backoff that a stop request interrupts (``Stopping``)."""

    def __init__(self, stop: threading.Event, *, first: float = 0.2, longest: float = 30.0) -> None:
        self.stop = stop
        self.first = first
        self.longest = longest
        self.attempt = 0

    def next_delay(self) -> float:
        return float(min(self.longest, self.first * 2.0**self.attempt))

    def wait(self) -> None:
        delay = self.next_delay()
        self.attempt += 1
        if self.stop.wait(delay):
            raise Stopping("stopping while waiting to retry")
