"""Start and stop the app services of the demo as child processes with their own logs.

The demo talks to the services only as a user would: `persona …` processes configured through
PERSONA_* environment variables, Kafka topics, PostgreSQL and the MLflow registry.
"""

from __future__ import annotations

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

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

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

    def stop(self, timeout: float = 20) -> None:
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
