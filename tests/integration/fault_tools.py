"""Tools of the fault tests: wait on a condition, a free port, a TCP link the test can cut.

Shared by every integration package (pytest puts this folder on ``sys.path``): a service "goes
down" for one process only, by cutting its link, so the shared stack stays up for other tests.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

__all__ = ["PERSONA", "ServiceProcess", "TcpProxy", "free_port", "wait_for"]

#: The `persona` command of this environment (the one a user runs).
PERSONA = str(Path(sys.executable).with_name("persona"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll ``predicate`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class ServiceProcess:
    """A real `persona …` process (its output in a log file) that a test can signal and restart."""

    args: tuple[str, ...]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    _log: TextIO | None = field(default=None, repr=False)

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a")
        self._log.write(f"--- start {' '.join(self.args)}\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            [PERSONA, *self.args], env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_until(self, predicate: Callable[[], Any], timeout: float, what: str) -> None:
        """``wait_for`` that fails at once, with the process's output, if the process exits."""

        def check() -> Any:
            if not self.alive:
                code = None if self.proc is None else self.proc.returncode
                raise AssertionError(
                    f"{' '.join(self.args)} exited ({code}) while waiting for {what}:\n"
                    f"{self.output()[-3000:]}"
                )
            return predicate()

        try:
            wait_for(check, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output()[-3000:]}") from None

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself (e.g. at a failpoint); its exit code."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{' '.join(self.args)} still running after {timeout}s:\n{self.output()[-3000:]}"
            ) from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait; SIGKILL if it has not exited after ``timeout`` seconds."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        if self._log is not None:
            self._log.close()
            self._log = None
        return int(self.proc.returncode)


class TcpProxy:
    """A TCP forwarder the test can cut and restore: PostgreSQL 'goes down' for one worker only."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._open = False

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        self._server = server
        self._open = True
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        self._open = False
        if self._server is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            if not self._open:
                client.close()
                return
            try:
                backend = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            backend.settimeout(None)
            with self._lock:
                self._conns += [client, backend]
            for a, b in ((client, backend), (backend, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)
