"""The months the demo replays, and why in that order.

The original project's story is January (reference), February (fresh noise, same spread), March
(spread grows from std 2 to 3.1). The demo keeps the spread at 3.1 in April ("stays drifted"):
that is what shows the loop closing — March raises the alarm, the retrained champion is fitted on
March, and April's windows come back ``ok`` against the new champion's own reference.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_MONTHS", "DemoMonth"]


@dataclass(frozen=True)
class DemoMonth:
    month: str
    std: float
    seed: int
    role: str
    scenario: tuple[str, ...] = ()  # more `persona generate` options (drift scenarios)


DEFAULT_MONTHS: tuple[DemoMonth, ...] = (
    DemoMonth("2025-01", 2.0, 101, "reference: the champion's reference sample"),
    DemoMonth("2025-02", 2.0, 102, "quiet: fresh noise, same spread, no drift expected"),
    DemoMonth("2025-03", 3.1, 103, "drift: spread grows 2 → 3.1 (the original March)"),
    DemoMonth("2025-04", 3.1, 104, "stays drifted: judged against the retrained champion"),
)
