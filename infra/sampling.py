"""RSS and CPU of running processes, sampled from /proc on a background thread, and the verdict
whether a service's memory stayed flat over a long run (bench/replay_loop.py, the soak).

Read from /proc rather than psutil: the services are our own children on Linux, the figures are
what ``ps``/``top`` show an operator, and sampling every second costs a few file reads.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from personas.settings import Settings

__all__ = [
    "FLAT_FLOOR_MIB",
    "FLAT_TOLERANCE",
    "RssFigures",
    "Sample",
    "Sampler",
    "StackServers",
    "children",
    "cpu_seconds",
    "pg_delta",
    "rss_mib",
    "server_cpu",
]

TICK = os.sysconf("SC_CLK_TCK")
#: A service is flat when its RSS at the end exceeds the RSS after warm-up by at most this share…
FLAT_TOLERANCE = 0.10
#: …or by at most this many MiB (allocator arenas and caches move small processes by a few MiB).
FLAT_FLOOR_MIB = 16.0


def rss_mib(pid: int | None) -> float:
    """Resident set size of ``pid`` in MiB (0 when there is no such process)."""
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of ``pid`` and all its threads, in seconds (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def children(parent: int) -> list[int]:
    """PIDs whose parent is ``parent`` (PostgreSQL's backends, checkpointer, WAL writer …)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == parent:
                found.append(int(entry.name))
    return found


@dataclass
class StackServers:
    """The broker PID and PostgreSQL postmaster named by the local stack's PID files (None
    where a file is missing): benchmarks charge their CPU to the system under test, because on
    one machine the broker's and PostgreSQL's work per event is part of it. The files are read
    whatever the settings point at, so against another broker the figures are not its own."""

    broker: int | None
    postmaster: int | None

    @classmethod
    def find(cls, settings: Settings) -> StackServers:
        from infra.stack.layout import Layout
        from infra.stack.process import read_pid

        layout = Layout.from_settings(settings)
        postmaster = read_pid(layout.service_dir("postgres") / "data" / "postmaster.pid")
        return cls(read_pid(layout.pid_file("kafka")), postmaster)

    def snapshot(self) -> ServerSnapshot:
        """CPU seconds so far: the broker's, and each PostgreSQL process's by PID."""
        broker = cpu_seconds(self.broker) if self.broker else None
        pg = None
        if self.postmaster:
            pids = [self.postmaster, *children(self.postmaster)]
            pg = {pid: cpu_seconds(pid) for pid in pids}
        return broker, pg


#: CPU seconds so far: the broker's, and each PostgreSQL process's by PID (None: not measured).
ServerSnapshot = tuple[float | None, dict[int, float] | None]


def server_cpu(before: ServerSnapshot, after: ServerSnapshot) -> tuple[float | None, float | None]:
    """Broker and PostgreSQL CPU seconds between two snapshots (None where not measured)."""
    broker = None if before[0] is None or after[0] is None else after[0] - before[0]
    return broker, pg_delta(before[1], after[1])


def pg_delta(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """PostgreSQL CPU between two snapshots; a backend started in between counts from 0, one
    that exited while being read (0 s) counts nothing rather than a negative."""
    if before is None or after is None:
        return None
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


@dataclass(frozen=True)
class Sample:
    t: float  # time.monotonic()
    pid: int
    rss_mib: float
    cpu_s: float


@dataclass
class RssFigures:
    """start / after warm-up / peak / end RSS of one service, and whether it stayed flat."""

    start: float
    warm: float
    peak: float
    end: float
    samples: int

    @property
    def growth_mib(self) -> float:
        return self.end - self.warm

    @property
    def flat(self) -> bool:
        return self.growth_mib <= max(FLAT_TOLERANCE * self.warm, FLAT_FLOOR_MIB)


@dataclass
class Sampler:
    """Samples every named process each ``period`` seconds until stopped. ``pids`` maps a name
    to a callable giving the current PID (or None while it is not running), so a service that is
    restarted, or a publisher run once per file, is followed under one name."""

    pids: dict[str, Callable[[], int | None]]
    period: float = 1.0
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()  # the final figure, taken while the services still run

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def sample(self) -> None:
        now = time.monotonic()
        with self._lock:
            for name, pid_of in self.pids.items():
                pid = pid_of()
                rss = rss_mib(pid)
                if pid is not None and rss > 0:
                    self.samples.setdefault(name, []).append(
                        Sample(now, pid, rss, cpu_seconds(pid))
                    )

    def cpu_between(self, name: str, t0: float, t1: float) -> float:
        """CPU seconds ``name`` used between t0 and t1, summed over its processes: from its last
        sample before t0 (a process running before the window: its start-up is not counted), or
        from 0 (a process started inside the window, sampled once or more), to its last sample
        up to t1 (+ one period, for the final one)."""
        with self._lock:
            by_pid: dict[int, list[Sample]] = {}
            for s in self.samples.get(name, []):
                by_pid.setdefault(s.pid, []).append(s)
        total = 0.0
        for series in by_pid.values():
            before = [s for s in series if s.t < t0]
            inside = [s for s in series if t0 <= s.t <= t1 + self.period]
            if inside:
                total += inside[-1].cpu_s - (before[-1].cpu_s if before else 0.0)
        return total

    def figures(self, name: str, warm_at: float, *, per_process: bool = False) -> RssFigures | None:
        """RSS figures of ``name``; warm = the first sample at or after ``warm_at``. With
        ``per_process`` (a command run once per chunk of work) each process counts by its peak:
        warm = the first process's peak, end = the last one's, so growth means each run of the
        same work needs more memory than the one before."""
        with self._lock:
            series = list(self.samples.get(name, []))
        if not series:
            return None
        peak = max(s.rss_mib for s in series)
        if per_process:
            peaks: dict[int, float] = {}
            for s in series:
                peaks[s.pid] = max(peaks.get(s.pid, 0.0), s.rss_mib)
            values = list(peaks.values())
            return RssFigures(series[0].rss_mib, values[0], peak, values[-1], len(series))
        warm = next((s.rss_mib for s in series if s.t >= warm_at), series[-1].rss_mib)
        return RssFigures(series[0].rss_mib, warm, peak, series[-1].rss_mib, len(series))
