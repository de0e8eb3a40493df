"""Process bookkeeping for the stack: PID files, liveness, ports, bounded waits, stopping.

A PID file is trusted only if the process it names is alive *and* its command line carries the
service's marker, so a stale file (after a crash or PID reuse) never makes us adopt or kill a
stranger's process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from personas.errors import StackError

__all__ = [
    "cmdline",
    "file_lock",
    "group_alive",
    "log_tail",
    "owned_pid",
    "pid_alive",
    "port_open",
    "read_pid",
    "start_detached",
    "stop_pid",
    "wait_until",
]


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return True


def cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def owned_pid(pid_file: Path, marker: str) -> int | None:
    """The PID from the file if that process is alive and is ours; removes a stale file."""
    pid = read_pid(pid_file)
    if pid is not None and pid_alive(pid) and marker in cmdline(pid):
        return pid
    if pid_file.exists():
        pid_file.unlink()
    return None


def free_port() -> int:
    """A port nothing listens on now (the kernel's choice, in the ephemeral range)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_port() -> int:
    """A free port below the ephemeral range, for a server the test kills and restarts: clients
    reconnecting to a dead server on an ephemeral port can connect to themselves (TCP
    simultaneous open), and the port then looks taken when the server starts again."""
    low = 32768
    with (
        contextlib.suppress(OSError, ValueError),
        open("/proc/sys/net/ipv4/ip_local_port_range") as ports,
    ):
        low = int(ports.read().split()[0])
    for _ in range(200):
        port = random.randrange(20000, min(low, 32000))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def start_detached(argv: list[str], log_file: Path, pid_file: Path, env: dict[str, str]) -> int:
    """Start a process in its own session (survives the CLI; stoppable as a group)."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is left (zombies awaiting their parent do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_pid(pid: int, name: str, timeout: float) -> None:
    """SIGTERM the service's process group, wait for *every* member, then SIGKILL the rest.

    Waiting for the leader alone is not enough: MLflow's uvicorn workers and job consumers outlived
    their parent by minutes, kept the port, and answered the next `stack up` in its place.
    """
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    if pgid != pid:  # not a group of its own: never signal a group we did not create
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not wait_until(lambda: not pid_alive(pid), timeout, 0.2):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not wait_until(lambda: not pid_alive(pid), 10, 0.2):
            raise StackError(f"{name} (pid {pid}) did not stop")
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    if wait_until(lambda: not group_alive(pgid), timeout, 0.2):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    if not wait_until(lambda: not group_alive(pgid), 10, 0.2):
        raise StackError(f"{name} (process group {pgid}) did not stop")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed) for the block: two `stack up` at
    once (both profiles in `make test`) must not run Maven or apt-get over each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def apt_install(package: str) -> None:
    """``apt-get update`` then ``apt-get install -y PACKAGE`` (the caller checked that we are root
    and holds its install lock); a failure is a StackError with apt's last words."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"`{' '.join(argv)}` failed: {result.stderr.strip()[-500:]}")


def log_tail(log_file: Path, lines: int = 8) -> str:
    try:
        text = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])
