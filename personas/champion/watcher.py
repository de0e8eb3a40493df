"""The follower's background threads: a poller that asks the registry where the alias points, and
(optionally) a model-updates listener that wakes it at once. Both are daemons that stop on
``stop()``; neither touches the model except through ``ChampionFollower.refresh``."""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from personas.champion.updates import UpdateListener
from personas.settings import Settings

__all__ = ["ChampionWatcher", "Followed"]

log = logging.getLogger(__name__)


class Followed(Protocol):
    """What the watcher needs of the follower it drives (``ChampionFollower``): the follower
    owns the watcher, so the watcher names only this, not the follower's module."""

    settings: Settings

    @property
    def retry_due(self) -> bool: ...

    def refresh(self, source: str = ...) -> bool: ...


class ChampionWatcher:
    """Polls every ``poll_interval_s`` (``retry_interval_s`` while a download waits on an
    outage), and on every model-updates message when ``updates_group_prefix`` is given."""

    def __init__(
        self,
        follower: Followed,
        *,
        poll_interval_s: float,
        retry_interval_s: float,
        updates_group_prefix: str | None,
    ) -> None:
        self.follower = follower
        self.poll_interval_s = poll_interval_s
        self.retry_interval_s = retry_interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._wake_source = "registry poll"
        self._poller = threading.Thread(target=self._poll_loop, name="champion-poller", daemon=True)
        self.listener: UpdateListener | None = None
        if updates_group_prefix is not None:
            self.listener = UpdateListener(
                follower.settings, self.wake, self._stop, group_prefix=updates_group_prefix
            )
        #: Set once every update published from now on will be seen (at once without a listener:
        #: the poll needs no positioning). A stream worker is not ready before this.
        self.assigned = self.listener.assigned if self.listener is not None else threading.Event()
        if self.listener is None:
            self.assigned.set()

    def start(self) -> None:
        self._poller.start()
        if self.listener is not None:
            self.listener.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in (self._poller, self.listener):
            if thread is not None and thread.is_alive():
                thread.join(timeout)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wake(self, source: str = "model-updates") -> None:
        self._wake_source = source
        self._wake.set()

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            retrying = self.follower.retry_due
            woken = self._wake.wait(self.retry_interval_s if retrying else self.poll_interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            source = self._wake_source if woken else ("retry" if retrying else "registry poll")
            try:
                self.follower.refresh(source)
            except Exception:
                # A bug, not an outage: say so with the traceback, keep the thread (and the
                # current model) alive, and never report it as "registry unreachable".
                log.exception(
                    "unexpected error while following the champion alias (a bug, not an outage)"
                )
