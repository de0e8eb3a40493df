"""The monitor's live counters, shared by its consumer loop (monitor/service.py) and its window
processor (monitor/processor.py): their own module, so neither imports the other for them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MonitorStats"]


@dataclass
class MonitorStats:
    """Counters updated live by both threads (plain ints: a reader may see them mid-window), for
    the stop log line, the CLI's summary and callers that watch progress (demo, tests)."""

    labels: int = 0
    responses: int = 0
    invalid: int = 0
    windows: int = 0
    published: int = 0
    adopted: int = 0
    retrains: int = 0
    late: int = 0
    future: int = 0  # dated beyond the wall clock + future_margin_s: ignored
