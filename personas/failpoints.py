"""Named points where a fault test can make a real process die, as a power cut would.

Some crashes matter only at one instant (after a drift report is sent but before it is recorded);
a SIGKILL from outside cannot hit that instant reliably. ``PERSONA_FAILPOINTS`` (comma-separated
names) makes the process SIGKILL itself when it reaches one of them: nothing is flushed, no
``finally`` runs, exactly like ``kill -9``. Unset in production; read per call so a test can set it
for one child process only. The names in use are listed in docs/reliability.md.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV", "failpoint"]

ENV = "PERSONA_FAILPOINTS"


def failpoint(name: str) -> None:
    """SIGKILL this process if ``name`` is one of the points named in ``PERSONA_FAILPOINTS``."""
    armed = os.environ.get(ENV)
    if armed and name in (point.strip() for point in armed.split(",")):
        os.kill(os.getpid(), signal.SIGKILL)
