"""Start and stop the app services as child processes with their own logs (the demo, the fault
tests, the soak).

They talk to the services only as a user would: `persona …` processes configured through
PERSONA_* environment variables, Kafka topics, PostgreSQL and the MLflow registry. Each runs in
its own session, so a signal reaches the whole process group, as a supervisor's would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from personas.errors import PersonaError

__all__ = ["ChildService", "persona_argv"]


def persona_argv(*args: str) -> list[str]:
    """`persona …` of this very environment (works without an activated venv)."""
    return [str(Path(sys.executable).parent / "persona"), *args]


@dataclass
class ChildService:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self, *, append: bool = False) -> ChildService:
        """Start the process; ``append`` keeps the log of an earlier run (a restart)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab" if append else "wb") as out:
            if append:
                out.write(f"--- restart {' '.join(self.argv[1:])}\n".encode())
                out.flush()
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself; its exit code (negative: killed by a signal)."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise PersonaError(
                f"the {self.name} service still runs after {timeout:.0f} s; see {self.log}"
            ) from None

    def check_alive(self) -> None:
        if not self.alive():
            raise PersonaError(f"the {self.name} service exited; see its log {self.log}")

    def wait_for_log(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if needle in self.log.read_text(errors="replace"):
                return
            time.sleep(0.3)
        raise PersonaError(
            f"the {self.name} service was not ready after {timeout:.0f} s; see {self.log}"
        )

    def wait_for_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise PersonaError(
            f"the {self.name} service was not ready after {timeout:.0f} s; see {self.log}"
        )

    def stop(self, timeout: float = 20, sig: int = signal.SIGTERM) -> int | None:
        """Send ``sig`` to the process group and wait (SIGKILL after ``timeout`` seconds); the
        exit code, None if it never started."""
        if self.process is None:
            return None
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode

    def kill(self) -> int | None:
        """SIGKILL, like a crash or the OOM killer: nothing is flushed, no cleanup runs."""
        return self.stop(timeout=30, sig=signal.SIGKILL)
