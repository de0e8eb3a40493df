"""A service the stack runs as a detached process it owns through a PID file (Kafka, MLflow).

One lifecycle for both: adopt a running instance only if its PID file and command line say it is
ours; refuse a port a stranger holds; start, wait a bounded time for it to answer, and on failure
stop it and name the log; stop by PID, never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
from abc import ABC, abstractmethod
from pathlib import Path

from infra.stack.layout import Layout, ServiceStatus
from infra.stack.process import (
    owned_pid,
    pid_alive,
    port_open,
    start_detached,
    stop_pid,
    wait_until,
)
from personas.errors import StackError
from personas.settings import Settings

__all__ = ["DetachedService"]


class DetachedService(ABC):
    name: str
    label: str  # how people call it in messages
    marker: str  # a string its command line contains
    start_timeout: float
    stop_timeout: float
    port_settings: tuple[tuple[str, str], ...] = ()  # (host field, port field) of Settings

    def __init__(self, settings: Settings, layout: Layout) -> None:
        self.settings = settings
        self.layout = layout

    @property
    @abstractmethod
    def address(self) -> str: ...

    @abstractmethod
    def answers(self) -> bool: ...

    @abstractmethod
    def prepare(self) -> tuple[list[str], dict[str, str], Path]:
        """Get everything ready to start; returns (argv, environment, stdout log)."""

    @abstractmethod
    def detail(self) -> str: ...

    @property
    def log(self) -> Path:
        return self.layout.log_file(self.name)

    def ports(self) -> list[tuple[str, int, str]]:
        """(host, port, the variable that moves it) of every port the service listens on."""
        return [
            (getattr(self.settings, h), getattr(self.settings, p), f"PERSONA_{p.upper()}")
            for h, p in self.port_settings
        ]

    def pid(self) -> int | None:
        return owned_pid(self.layout.pid_file(self.name), self.marker)

    def start(self) -> str:
        if self.pid() is not None:
            if wait_until(self.answers, self.start_timeout):
                return "already running"
            raise StackError(
                f"{self.label} is running but does not answer at {self.address}; see {self.log}"
            )
        for host, port, variable in self.ports():
            if port_open(host, port):
                raise StackError(
                    f"port {port} on {host} is taken by a process that is not this stack's "
                    f"{self.label}; stop it or set {variable}"
                )
        argv, env, log = self.prepare()
        offset = log.stat().st_size if log.exists() else 0
        pid = start_detached(argv, log, self.layout.pid_file(self.name), env)
        # Follow the process we started by its PID, not the PID file: a check that lost the file
        # once left a running server behind that the next `up` mistook for its own.
        answered = wait_until(lambda: self.answers() or not pid_alive(pid), self.start_timeout, 1.0)
        if not (answered and pid_alive(pid)):
            exited = not pid_alive(pid)
            stop_pid(pid, self.label, timeout=self.stop_timeout)
            self.layout.pid_file(self.name).unlink(missing_ok=True)
            what = (
                "exited during start"
                if exited
                else f"did not answer within {self.start_timeout:.0f} s"
            )
            logs = {self.log, log}
            raise StackError(
                f"{self.label} {what} (pid {pid}); see "
                f"{' and '.join(str(p) for p in sorted(logs))}:\n{_tail_since(log, offset)}"
            )
        return "started"

    def stop(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        stop_pid(pid, self.label, timeout=self.stop_timeout)
        self.layout.pid_file(self.name).unlink(missing_ok=True)
        return "stopped"

    def kill(self) -> int | None:
        """SIGKILL the service (its whole process group), a crash for the fault tests; waits until
        it is gone. Its PID, or None if it was not running. ``start`` brings it back."""
        pid = self.pid()
        if pid is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if not wait_until(lambda: not pid_alive(pid), 30, 0.1):
            raise StackError(f"{self.label} (pid {pid}) survived SIGKILL")
        self.layout.pid_file(self.name).unlink(missing_ok=True)
        # The kernel may still answer on its ports for a moment; `start` would call them taken.
        wait_until(lambda: not any(port_open(h, p) for h, p, _ in self.ports()), 60, 0.1)
        return pid

    def status(self) -> ServiceStatus:
        pid = self.pid()
        return ServiceStatus(
            self.name, self.address, pid, pid is not None and self.answers(), self.detail()
        )


def _tail_since(log: Path, offset: int, lines: int = 8) -> str:
    """The last lines this start wrote (logs are appended across starts)."""
    try:
        with open(log, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:]) or "(nothing written)"
